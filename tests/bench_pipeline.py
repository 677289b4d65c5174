"""Benchmark: the refresh pipeline against the export server alone, side by side in one run.

    python -m tests.bench_pipeline [--rows 100] [--adds 15]
    python -m tests.bench_pipeline --load 1000    # only the 1,000-row load run
    python -m tests.bench_pipeline --adds-down 20 # only: 20 concurrent Adds, export servers down

Starts its own stack (datagen, the export servers, the three workers) on the
test ports of TEST_SLOT 9, against a database of its own, then prints:

1. the export server's own throughput: the very chart requests of the rows,
   sent straight to the same export servers with as many concurrent clients
   as there are render processes (the same capacity);
2. the pipeline's throughput for a bulk refresh of the same rows
   (points -> render -> persist through RabbitMQ, Redis and PostgreSQL);
3. their ratio, and the median add-to-chart time with its breakdown by stage.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "admin"), str(ROOT / "pipeline")]
os.environ.setdefault("TEST_SLOT", "9")
# As `make dev` runs it: two render processes per export server.
os.environ.setdefault("RENDER_CONCURRENCY", "4")
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django  # noqa: E402

django.setup()

import psycopg2  # noqa: E402
import redis  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import F  # noqa: E402
from psycopg2 import sql  # noqa: E402

from functions import selectors, services  # noqa: E402
from functions.models import Function  # noqa: E402
from pipeline import clients, settings  # noqa: E402
from pipeline.celery import app  # noqa: E402
from pipeline.charts import chart_options, plot_width  # noqa: E402
from tests.stack import Stack, wait_until  # noqa: E402

EXPRESSIONS = ["t + 2/t", "sin(t)", "t*t + 2/t", "cos(t / 3600) * sqrt(t)"]


def create_database() -> None:
    db = connection.settings_dict
    conn = psycopg2.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"], dbname="postgres"
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]])
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
    conn.close()
    call_command("migrate", verbosity=0)
    Function.objects.all().delete()


def settle(pks: list[int], timeout: float) -> list[Function]:
    """Wait until every row stored its latest run; the poll is one cheap COUNT, so the
    benchmark itself takes almost no CPU from the stack it measures."""
    rows = Function.objects.filter(pk__in=pks)
    pending = rows.exclude(result_run=F("run_id")) | rows.filter(result_run__isnull=True)
    wait_until(lambda: not pending.exists(), timeout, f"{len(pks)} rows", poll=0.05)
    return list(rows.defer("chart"))


def exporter_alone(rows: list[Function], urls: list[str], clients_count: int) -> float:
    """Charts per second of the export servers fed directly with the rows' chart requests."""
    payloads = []
    for row in rows:
        body = clients.fetch_points(row.expression, row.interval, row.dt, plot_width(settings.CHART_WIDTH))
        payloads.append(chart_options(row.expression, body["points"], row.dt, row.interval))

    def worker(k: int) -> int:
        count = 0
        for options in payloads[k::clients_count]:
            clients.render_png(urls[k % len(urls)], options, settings.CHART_WIDTH, settings.CHART_HEIGHT)
            count += 1
        return count

    started = time.perf_counter()
    with ThreadPoolExecutor(clients_count) as pool:
        rendered = sum(pool.map(worker, range(clients_count)))
    elapsed = time.perf_counter() - started
    assert rendered == len(rows)
    return rendered / elapsed


CPU_GROUPS = {
    "chromium": "chromium",
    "highcharts-export-server": "export server (node)",
    "datagen_service": "datagen",
    "-Q points": "worker-points",
    "-Q render": "worker-render",
    "-Q persist": "worker-persist",
    "postgres": "postgresql",
    "beam.smp": "rabbitmq",
    "redis-server": "redis",
}
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by every process on the machine, by role."""
    used: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        role = next((name for key, name in CPU_GROUPS.items() if key in cmdline), "other")
        used[role] = used.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
    return used


def pipeline_refresh(rows: list[Function]) -> tuple[float, int]:
    started = time.perf_counter()
    services.refresh_functions(rows)
    settled = settle([r.pk for r in rows], 600)
    elapsed = time.perf_counter() - started
    failed = sum(r.state != "done" for r in settled)
    return len(rows) / elapsed, failed


def add_to_chart(count: int) -> list[dict[str, float]]:
    samples = []
    for i in range(count):
        started = time.time()
        function = services.create_function(expression=EXPRESSIONS[i % len(EXPRESSIONS)], dt=1, interval=1)
        assert selectors.wait_for_outcome(function.pk, function.run_id, 60, poll=0.01)
        total = time.time() - started
        function.refresh_from_db()
        trace = function.trace
        points, render, persist = trace["points"], trace["render"], trace["persist"]
        samples.append(
            {
                "total": total,
                "to points queue": points["started"] - started,
                "points": points["seconds"],
                "to render queue": render["started"] - points["started"] - points["seconds"],
                "render": render["seconds"],
                "to persist queue": persist["started"] - render["started"] - render["seconds"],
                "persist + seen": started + total - persist["started"],
            }
        )
    return samples


# ----------------------------------------------------------------------------- the load run (issue 10.6)

LIST_URL = "/admin/functions/function/"


SHARED_ROLES = {"postgresql", "rabbitmq", "redis"}


def _pss_by_role(roots: set[int]) -> dict[str, float]:
    """Proportional set size (MB) summed by role: the stack's own processes (``roots``
    and their descendants, Chromium included) and the machine's shared PostgreSQL,
    RabbitMQ and Redis."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue

    def ours(pid: int) -> bool:
        while pid > 1:
            if pid in roots:
                return True
            pid = parents.get(pid, 0)
        return False

    used: dict[str, float] = {}
    for pid in parents:
        proc = Path("/proc") / str(pid)
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            role = next((name for key, name in CPU_GROUPS.items() if key in cmdline), None)
            if not (role in SHARED_ROLES or (role and ours(pid))):
                continue
            pss = next(line for line in (proc / "smaps_rollup").read_text().splitlines() if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
        used[role] = used.get(role, 0.0) + int(pss.split()[1]) / 1024
    return used


def _queue_lengths() -> dict[str, int]:
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        return {
            queue: channel.queue_declare(queue, passive=True).message_count
            for queue in (settings.POINTS_QUEUE, settings.RENDER_QUEUE, settings.PERSIST_QUEUE)
        }


def load_run(count: int, stack: Stack) -> int:
    """A bulk refresh of ``count`` rows as a user runs it: select all, one action.

    Prints the POST's answer time, the wall time until every row is final, the
    final counts, the peak queue lengths, the peak memory (PSS) per process
    role and the list page's latency while the batch runs.
    """
    import threading

    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.filter(username="bench").first()
    user = user or get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-pw-1")
    Function.objects.all().delete()
    rows = Function.objects.bulk_create(
        Function(expression=EXPRESSIONS[i % len(EXPRESSIONS)], dt=1, interval=1 + i % 7) for i in range(count)
    )
    pks = [row.pk for row in rows]
    sessions = {process.popen.pid for process in stack.processes if process.popen}
    peaks: dict[str, float] = {}
    memory: dict[str, float] = {}
    latencies: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                for queue, length in _queue_lengths().items():
                    peaks[queue] = max(peaks.get(queue, 0), length)
            except Exception:  # noqa: BLE001 - a sample missed is not a failure
                pass
            for role, mb in _pss_by_role(sessions).items():
                memory[role] = max(memory.get(role, 0.0), mb)
            stop.wait(0.5)

    def browse() -> None:
        viewer = Client()
        viewer.force_login(user)
        while not stop.is_set():
            started = time.perf_counter()
            assert viewer.get(LIST_URL).status_code == 200
            latencies.append(time.perf_counter() - started)
            stop.wait(0.5)

    threads = [threading.Thread(target=sample), threading.Thread(target=browse)]
    for thread in threads:
        thread.start()
    try:
        client = Client()
        client.force_login(user)
        started = time.perf_counter()
        first_page = pks[-20:]  # what the list shows; "select all" extends it to every row
        response = client.post(
            LIST_URL, {"action": "refresh", "select_across": "1", "index": "0", "_selected_action": first_page}
        )
        post_seconds = time.perf_counter() - started
        assert response.status_code == 302, response.status_code
        settled = settle(pks, 1800)
        wall = time.perf_counter() - started
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    states = {state: sum(r.state == state for r in settled) for state in ("done", "failed", "queued")}
    print(f"load run: bulk refresh of {count} rows (select all, one action)")
    print(f"  POST answered in        {post_seconds:7.2f} s   (target < 2 s)")
    print(f"  every row final after   {wall:7.1f} s   ({count / wall:.1f} rows/s)")
    print(f"  final: {states['done']} done, {states['failed']} failed, {states['queued']} not final")
    print("  peak queue lengths:     " + ", ".join(f"{q} {n:.0f}" for q, n in peaks.items()))
    if latencies:
        print(
            f"  list page during the run: median {statistics.median(latencies):.3f} s, "
            f"max {max(latencies):.3f} s over {len(latencies)} loads   (target median < 0.3 s)"
        )
    print("  peak memory (PSS, MB) by process role (PostgreSQL, RabbitMQ, Redis: the machine's, shared):")
    for role, mb in sorted(memory.items(), key=lambda item: -item[1]):
        print(f"    {role:24s} {mb:8.0f}")
    return 0 if states["done"] + states["failed"] == count else 1


def adds_while_exporters_down(stack: Stack, count: int) -> int:
    """``count`` concurrent Adds through the real admin (gunicorn) while the export
    servers are down: the Adds' answer times and the list page's latency meanwhile."""
    import threading

    import requests

    url = f"http://127.0.0.1:{stack.env['ADMIN_PORT']}"
    user = get_user_model_bench()

    def login() -> requests.Session:
        session = requests.Session()
        session.get(url + "/admin/login/", timeout=30)
        session.post(
            url + "/admin/login/",
            data={"username": user, "password": "bench-pw-1", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
            headers={"Referer": url + "/admin/login/"},
            timeout=30,
        )
        return session

    latencies: list[float] = []
    stop = threading.Event()

    def browse() -> None:
        viewer = login()
        while not stop.is_set():
            started = time.perf_counter()
            viewer.get(url + LIST_URL, timeout=60).raise_for_status()
            latencies.append(time.perf_counter() - started)
            stop.wait(0.25)

    def add(i: int) -> float:
        session = login()
        data = {"preset": "__custom__", "expression": f"t + {i}", "dt": 1, "interval": 1, "_save": "Save"}
        data["csrfmiddlewaretoken"] = session.cookies["csrftoken"]
        started = time.perf_counter()
        session.post(url + LIST_URL + "add/", data=data, headers={"Referer": url}, timeout=120).raise_for_status()
        return time.perf_counter() - started

    before = set(Function.objects.values_list("pk", flat=True))
    for exporter in stack.exporters:
        exporter.stop()
    browser = threading.Thread(target=browse)
    browser.start()
    try:
        time.sleep(2)
        with ThreadPoolExecutor(count) as pool:
            answers = list(pool.map(add, range(count)))
    finally:
        stop.set()
        browser.join()
        for exporter, exporter_url in zip(stack.exporters, stack.exporter_urls, strict=True):
            stack.restart(exporter, exporter_url + "/health")
    added = list(Function.objects.exclude(pk__in=before).values_list("pk", flat=True))
    settled = settle(added, 300)
    done = sum(r.state == "done" for r in settled)
    print(f"{count} concurrent Adds with the export servers down (admin: gunicorn, 2 processes x 8 threads):")
    print(f"  Add answered: median {statistics.median(answers):.2f} s, max {max(answers):.2f} s")
    print(
        f"  list page meanwhile: median {statistics.median(latencies):.3f} s, max {max(latencies):.3f} s "
        f"over {len(latencies)} loads   (target median < 0.3 s)"
    )
    print(f"  after the export servers came back: {done}/{len(added)} done")
    return 0 if done == len(added) == count else 1


def get_user_model_bench() -> str:
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    user = users.filter(username="bench").first() or users.create_superuser("bench", "bench@example.com", "bench-pw-1")
    user.set_password("bench-pw-1")
    user.save()
    return user.username


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--adds", type=int, default=15)
    parser.add_argument("--load", type=int, default=0, help="only the load run: a bulk refresh of this many rows")
    parser.add_argument("--adds-down", type=int, default=0, help="only: this many concurrent Adds, export servers down")
    args = parser.parse_args()

    create_database()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dashboard.settings", "CELERY_LOG_LEVEL": "ERROR"}
    env["POSTGRES_DB"] = connection.settings_dict["NAME"]
    redis.Redis.from_url(settings.RESULT_BACKEND).flushdb()
    app.control.purge()
    if args.adds_down:
        env["DJANGO_DEBUG"] = "true"  # the admin serves its static files itself
    stack = Stack(env, extra=("admin",) if args.adds_down else ())
    try:
        stack.start()
        if args.load:
            return load_run(args.load, stack)
        if args.adds_down:
            return adds_while_exporters_down(stack, args.adds_down)
        render_processes = int(env["RENDER_CONCURRENCY"])
        rows = Function.objects.bulk_create(
            Function(expression=EXPRESSIONS[i % len(EXPRESSIONS)], dt=1, interval=1 + i % 7) for i in range(args.rows)
        )
        pipeline_refresh(rows[: 2 * render_processes])  # warm up every process and browser page

        exporters = len(stack.exporter_urls)
        print(f"capacity: {exporters} export servers (one page each), {render_processes} render processes")
        print(f"chart: {settings.CHART_WIDTH}x{settings.CHART_HEIGHT} PNG, {args.rows} rows")
        # The export servers' own best: one client per server, and two per server.
        alone_runs = {n: exporter_alone(rows, stack.exporter_urls, n) for n in (exporters, 2 * exporters)}
        for n, rate in alone_runs.items():
            print(f"export server alone, {n} clients: {rate:6.2f} charts/s")
        before = cpu_seconds()
        through, failed = pipeline_refresh(rows)
        after = cpu_seconds()
        alone_runs["again"] = exporter_alone(rows, stack.exporter_urls, 2 * exporters)
        print(f"export server alone again, {2 * exporters} clients: {alone_runs['again']:6.2f} charts/s")
        alone = max(alone_runs.values())  # the export servers' best run is the yardstick
        print(f"export server alone:         {alone:6.2f} charts/s")
        print(f"pipeline bulk refresh:       {through:6.2f} charts/s  ({failed} failed)")
        print(f"pipeline / export server:    {through / alone:6.2f}   (target >= 0.9)")

        print("CPU seconds per chart during the bulk refresh, by process:")
        spent = {role: (after.get(role, 0) - before.get(role, 0)) / len(rows) for role in after}
        for role, seconds in sorted(spent.items(), key=lambda item: -item[1]):
            if seconds >= 0.0005:
                print(f"  {role:24s} {seconds:7.4f}")

        samples = add_to_chart(args.adds)
        print(f"add-to-chart, {args.adds} sequential adds (median seconds):")
        for key in samples[0]:
            print(f"  {key:18s} {statistics.median(s[key] for s in samples):7.3f}")
        return 0 if failed == 0 else 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
