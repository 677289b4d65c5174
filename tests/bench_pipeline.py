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
3. their ratio, and the median add-to-chart time with its breakdown by stage;
4. where the time goes during the bulk refresh: per export server, from the
   render stage's own timestamps in the stored traces, its busy and idle time
   and the requests queued in front of it (and the render queue's depth);
5. the add-to-chart of a 10-year, 1-minute series (5.3 M samples) by stage;
6. (--sweep, on by default) the same bulk refresh against 1, 2, 3 and 4 export
   servers, each with the render concurrency `make dev` picks for it: the
   export servers' own rate, the pipeline's, and their ratio.

    python -m tests.bench_pipeline --metrics-cost 200  # only: CPU per chart with and without metrics

7. (--metrics-cost N) the bulk refresh of N rows with the metrics off and on
   (every process's METRICS_PORT, each endpoint scraped every second), in
   alternating rounds: the whole stack's CPU seconds per chart and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TEST_SLOT", "9")
# As `make dev` runs it: two render processes per export server.
os.environ.setdefault("RENDER_CONCURRENCY", "4")
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import F  # noqa: E402

from functions import selectors, services  # noqa: E402
from functions.models import Function  # noqa: E402
from pipeline import clients, settings  # noqa: E402
from pipeline.celery import app  # noqa: E402
from pipeline.charts import chart_options, plot_width  # noqa: E402
from tests.bench_db import create_database  # noqa: E402
from tests.stack import Stack, wait_until  # noqa: E402

T = TypeVar("T")
EXPRESSIONS = ["t + 2/t", "sin(t)", "t*t + 2/t", "cos(t / 3600) * sqrt(t)"]


def stage_breakdown(trace: dict, started: float, total: float, points_label: str = "points") -> dict[str, float]:
    """One add-to-chart, split by stage from the run's stored trace (seconds)."""
    points, render, persist = trace["points"], trace["render"], trace["persist"]
    return {
        "total": total,
        "to points queue": points["started"] - started,
        points_label: points["seconds"],
        "to render queue": render["started"] - points["started"] - points["seconds"],
        "render": render["seconds"],
        "to persist queue": persist["started"] - render["started"] - render["seconds"],
        "persist + seen": started + total - persist["started"],
    }


def settle(pks: list[int], timeout: float) -> list[Function]:
    """Wait until every row stored its latest run; the poll is one cheap query ten
    times a second, so the benchmark itself takes almost no CPU from the stack it measures."""
    rows = Function.objects.filter(pk__in=pks)
    pending = rows.exclude(result_run=F("run_id")) | rows.filter(result_run__isnull=True)
    wait_until(lambda: not pending.exists(), timeout, f"{len(pks)} rows", poll=0.1)
    return list(rows.defer("chart"))


def chart_requests(rows: list[Function]) -> list[dict]:
    """The rows' chart requests, as the render stage sends them (built once, before any timing)."""
    payloads = []
    for row in rows:
        body = clients.fetch_points(row.expression, row.interval, row.dt, plot_width(settings.CHART_WIDTH))
        payloads.append(chart_options(row.expression, body["points"], row.dt, row.interval))
    return payloads


def exporter_alone(payloads: list[dict], urls: list[str], clients_count: int) -> float:
    """Charts per second of the export servers fed directly with these chart requests."""

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
    assert rendered == len(payloads)
    return rendered / elapsed


CPU_GROUPS = {
    "chromium": "chromium",
    "exporter/server.mjs": "export server (node)",
    "exporter/stock.mjs": "export server (node)",
    "datagen_service": "datagen",
    "-Q points": "worker-points",
    "-Q render": "worker-render",
    "-Q persist": "worker-persist",
    "postgres": "postgresql",
    "beam.smp": "rabbitmq",
    "redis-server": "redis",
}
TICKS = os.sysconf("SC_CLK_TCK")
# A process's CPU here is its own (utime, stime) plus that of its children that ended and
# were reaped (cutime, cstime): the stock export server's Chromium ends a page's renderer
# process every 40 exports, and without them its CPU would vanish from every delta.


EXPORTER_ROLES = {"chromium", "export server (node)"}
SHARED_ROLES = {"postgresql", "rabbitmq", "redis"}


def _descendants(roots: set[int]) -> set[int]:
    """``roots`` and every process below them (Chromium under its export server, ...)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found = set()
    for pid in parents:
        ancestor = pid
        while ancestor > 1:
            if ancestor in roots:
                found.add(pid)
                break
            ancestor = parents.get(ancestor, 0)
    return found


def cpu_seconds(stack: Stack) -> dict[int, tuple[str, float]]:
    """CPU seconds used so far, with its role, by each of the stack's own processes
    (and their children) and of the machine's shared PostgreSQL, RabbitMQ and
    Redis; other work on the machine (e.g. a test suite) is left out."""
    ours = _descendants({process.popen.pid for process in stack.processes if process.popen})
    used: dict[int, tuple[str, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        role = next((name for key, name in CPU_GROUPS.items() if key in cmdline), "other")
        if role in SHARED_ROLES or int(stat.parent.name) in ours:
            used[int(stat.parent.name)] = (role, sum(int(f) for f in fields[11:15]) / TICKS)
    return used


def by_role(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds by role between two :func:`cpu_seconds`: the role's total after less its total
    before, so a process that ended meanwhile counts once (its earlier CPU in ``before``, all
    of it in its parent's cutime ``after``)."""
    spent: dict[str, float] = {}
    for reading, sign in ((after, 1), (before, -1)):
        for role, seconds in reading.values():
            spent[role] = spent.get(role, 0.0) + sign * seconds
    return {role: max(0.0, seconds) for role, seconds in spent.items()}


def ceiling(alone: dict[str, float], pipeline: dict[str, float]) -> float:
    """The best ratio the pipeline can reach once the CPU is full: the export servers'
    CPU per chart (alone) over that plus the rest of the pipeline's CPU per chart."""
    exporter = sum(alone.get(role, 0.0) for role in EXPORTER_ROLES)
    rest = sum(seconds for role, seconds in pipeline.items() if role not in EXPORTER_ROLES)
    return exporter / (exporter + rest) if exporter else 0.0


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
        assert selectors.wait_for_outcome(function.pk, function.run_id, 60)
        total = time.time() - started
        function.refresh_from_db()
        samples.append(stage_breakdown(function.trace, started, total))
    return samples


# ----------------------------------------------------------------------------- the load run (issue 10.6)

LIST_URL = "/admin/functions/function/"


def _pss_by_role(roots: set[int]) -> dict[str, float]:
    """Proportional set size (MB) summed by role: the stack's own processes (``roots``
    and their descendants, Chromium included) and the machine's shared PostgreSQL,
    RabbitMQ and Redis."""
    ours = _descendants(roots)
    used: dict[str, float] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            role = next((name for key, name in CPU_GROUPS.items() if key in cmdline), None)
            if not (role in SHARED_ROLES or (role and int(proc.name) in ours)):
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

    from django.test import Client

    user = bench_user()
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
    user = bench_user().username

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


def bench_user():
    """The benchmark's superuser ("bench", password "bench-pw-1"), created or reset."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    user = users.filter(username="bench").first() or users.create_superuser("bench", "bench@example.com", "bench-pw-1")
    user.set_password("bench-pw-1")
    user.save()
    return user


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--adds", type=int, default=15)
    parser.add_argument("--load", type=int, default=0, help="only the load run: a bulk refresh of this many rows")
    parser.add_argument("--adds-down", type=int, default=0, help="only: this many concurrent Adds, export servers down")
    parser.add_argument("--big-adds", type=int, default=5, help="adds of the 10-year, 1-minute series")
    parser.add_argument("--sweep", default="1,2,3,4", help="export server counts to sweep ('' for none)")
    parser.add_argument("--sweep-only", action="store_true", help="only the sweep")
    parser.add_argument("--metrics-cost", type=int, default=0, help="only: this many rows, metrics off and on")
    args = parser.parse_args()

    create_database()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dashboard.settings", "CELERY_LOG_LEVEL": "ERROR"}
    env["POSTGRES_DB"] = connection.settings_dict["NAME"]
    redis.Redis.from_url(settings.RESULT_BACKEND).flushdb()
    app.control.purge()
    if args.sweep_only:
        sweep(env, [int(n) for n in args.sweep.split(",") if n.strip()], args.rows)
        return 0
    if args.metrics_cost:
        return metrics_cost(env, args.metrics_cost)
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
        pages = os.environ.get("EXPORTER_PAGES") or "2"  # server.mjs's default
        print(f"capacity: {exporters} export servers ({pages} pages each), {render_processes} render processes")
        print(f"chart: {settings.CHART_WIDTH}x{settings.CHART_HEIGHT} PNG, {args.rows} rows")
        # The export servers' own best: one client per server, and two per server.
        payloads = chart_requests(rows)
        alone_runs = {n: exporter_alone(payloads, stack.exporter_urls, n) for n in (exporters, 2 * exporters)}
        for n, rate in alone_runs.items():
            print(f"export server alone, {n} clients: {rate:6.2f} charts/s")
        cpu = Meter(stack)
        bulk_started = time.time()
        through, failed = cpu.measure(lambda: pipeline_refresh(rows))
        bulk_finished = time.time()
        pipeline_cpu, pipeline_busy = cpu.per_chart(len(rows)), cpu.busy
        alone_runs["again"] = cpu.measure(lambda: exporter_alone(payloads, stack.exporter_urls, 2 * exporters))
        alone_cpu, alone_busy = cpu.per_chart(len(rows)), cpu.busy
        print(f"export server alone again, {2 * exporters} clients: {alone_runs['again']:6.2f} charts/s")
        alone = max(alone_runs.values())  # the export servers' best run is the yardstick
        print(f"export server alone:         {alone:6.2f} charts/s")
        print(f"pipeline bulk refresh:       {through:6.2f} charts/s  ({failed} failed)")
        print(f"pipeline / export server:    {through / alone:6.2f}   (target >= 0.9)")

        print("CPU seconds per chart, by process role (the stack's own processes and the shared services):")
        print(f"  {'role':24s} {'pipeline':>8} {'alone':>8}")
        for role, seconds in sorted(pipeline_cpu.items(), key=lambda item: -item[1]):
            if seconds >= 0.0005 or alone_cpu.get(role, 0) >= 0.0005:
                print(f"  {role:24s} {seconds:8.4f} {alone_cpu.get(role, 0.0):8.4f}")
        print(f"  {'total':24s} {sum(pipeline_cpu.values()):8.4f} {sum(alone_cpu.values()):8.4f}")
        print(
            f"CPU busy (every process on the machine / wall / {os.cpu_count()} cores): "
            f"{pipeline_busy:.0%} during the bulk refresh, {alone_busy:.0%} during the export servers' run alone"
        )
        print(
            f"ceiling once the CPU is full (export servers' CPU per chart / the pipeline's): "
            f"{ceiling(alone_cpu, pipeline_cpu):.2f}"
        )

        print_render_timeline([r.pk for r in rows], bulk_started, bulk_finished)

        samples = add_to_chart(args.adds)
        print(f"add-to-chart, {args.adds} sequential adds (median seconds):")
        for key in samples[0]:
            print(f"  {key:18s} {statistics.median(s[key] for s in samples):7.3f}")
        print_big_adds(args.big_adds)
    finally:
        stack.stop()
    counts = [int(n) for n in args.sweep.split(",") if n.strip()]
    if counts:
        sweep(env, counts, args.rows)
    return 0 if failed == 0 else 1


# ---------------------------------------------------------------- throughput (issue 12)
# Where the time of the bulk refresh goes, the big series, the sweep over the
# number of export servers. Kept apart from the load part above.

BIG_SERIES = {"expression": "t + 2/t", "dt": 1 / 60, "interval": 3652.5}  # 10 years at 1 minute
PORT_BASE = 18000 + 100 * int(os.environ["TEST_SLOT"])


def render_timeline(pks: list[int]) -> dict[str, list[tuple[float, float]]]:
    """Per export server, the (start, end) of every render of these rows, from
    the render stage's own timestamps stored in the rows' traces."""
    timeline: dict[str, list[tuple[float, float]]] = {}
    for trace in Function.objects.filter(pk__in=pks).values_list("trace", flat=True):
        render = (trace or {}).get("render") or {}
        if "started" in render and "seconds" in render:
            url = render.get("exporter", "?")
            timeline.setdefault(url, []).append((render["started"], render["started"] + render["seconds"]))
    return timeline


def busy_seconds(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    """Length of the union of the intervals within [start, end]."""
    busy, reach = 0.0, start
    for lo, hi in sorted(intervals):
        lo, hi = max(lo, reach), min(hi, end)
        if hi > lo:
            busy += hi - lo
            reach = hi
    return busy


def mean_depth(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    """Time-averaged number of intervals open at once within [start, end]."""
    return sum(max(0.0, min(hi, end) - max(lo, start)) for lo, hi in intervals) / max(end - start, 1e-9)


def print_render_timeline(pks: list[int], started: float, finished: float) -> None:
    """Idle fraction per export server during the bulk refresh, and the queues in front of it."""
    window = finished - started
    timeline = render_timeline(pks)
    traces = list(Function.objects.filter(pk__in=pks).values_list("trace", flat=True))
    # Render queue (RabbitMQ, shared): the points stage has finished, the render stage has not begun.
    waiting = [
        (t["points"]["started"] + t["points"]["seconds"], t["render"]["started"])
        for t in traces
        if t and "points" in t and "render" in t
    ]
    first_render = min((lo for ivs in timeline.values() for lo, _ in ivs), default=started)
    print(
        f"where the time goes during the bulk refresh ({window:.2f} s; first render starts after "
        f"{first_render - started:.2f} s), from the render stage's own timestamps:"
    )
    print(f"  {'export server':28s} {'renders':>7} {'busy s':>7} {'idle':>6} {'in flight':>9} {'ms/render':>9}")
    for url, intervals in sorted(timeline.items()):
        busy = busy_seconds(intervals, started, finished)
        depth = mean_depth(intervals, started, finished)
        per = 1000 * sum(hi - lo for lo, hi in intervals) / len(intervals)
        print(f"  {url:28s} {len(intervals):7d} {busy:7.2f} {1 - busy / window:6.1%} {depth:9.2f} {per:9.0f}")
    queue = mean_depth(waiting, started, finished)
    print(f"  render queue (RabbitMQ, all servers): {queue:.2f} tasks waiting on average")
    print("  in flight: renders open at once on that server (each of its pages draws one chart at a time,")
    print("  the rest wait inside the export server); idle: share of the refresh with no render open on it.")


def print_big_adds(count: int) -> None:
    """Add-to-chart of the 10-year, 1-minute series: median seconds by stage."""
    if count <= 0:
        return
    samples = []
    for _ in range(count):
        started = time.time()
        function = services.create_function(**BIG_SERIES)
        assert selectors.wait_for_outcome(function.pk, function.run_id, 120)
        total = time.time() - started
        function.refresh_from_db()
        if function.state != "done":
            print(f"  10-year series failed: {function.state} {getattr(function, 'error', '')!s:.200}")
            return
        samples.append(stage_breakdown(function.trace, started, total, points_label="points (datagen)"))
    print(
        f"add-to-chart of a 10-year, 1-minute series (5,259,601 samples -> M4), {count} sequential adds "
        "(median seconds, target total <= 1.5):"
    )
    for key in samples[0]:
        print(f"  {key:18s} {statistics.median(s[key] for s in samples):7.3f}")


def cpu_by_pid() -> dict[int, float]:
    """CPU seconds used so far by each process on the machine."""
    used: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[int(stat.parent.name)] = sum(int(f) for f in fields[11:15]) / TICKS
    return used


class Meter:
    """CPU used while something runs: by role within the stack (:func:`cpu_seconds`)
    and machine-wide as the share of every core that was busy."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.roles: dict[str, float] = {}
        self.busy = 0.0

    def measure(self, run: Callable[[], T]) -> T:
        roles, machine, wall = cpu_seconds(self.stack), cpu_by_pid(), time.perf_counter()
        result = run()
        wall = time.perf_counter() - wall
        now = cpu_by_pid()
        used = sum(max(0.0, seconds - machine.get(pid, 0.0)) for pid, seconds in now.items())
        self.busy = used / wall / (os.cpu_count() or 1)
        self.roles = by_role(roles, cpu_seconds(self.stack))
        return result

    def per_chart(self, charts: int) -> dict[str, float]:
        return {role: seconds / charts for role, seconds in self.roles.items()}


def sizing(**given: str) -> dict[str, int]:
    """deploy/sizing's answer (make dev's and compose's rule) on this machine; ``given``
    are its inputs (e.g. EXPORTER_INSTANCES), the others it computes."""
    env = {**os.environ, "EXPORTER_INSTANCES": "", "RENDER_CONCURRENCY": "", **given}
    out = subprocess.run([str(ROOT / "deploy" / "sizing")], env=env, capture_output=True, text=True, check=True)
    return {name: int(value) for name, value in (line.split("=", 1) for line in out.stdout.split())}


def render_processes_for(instances: int) -> int:
    """Render concurrency for this many export servers, by deploy/sizing's rule."""
    return sizing(EXPORTER_INSTANCES=str(instances))["RENDER_CONCURRENCY"]


def sweep(base_env: dict[str, str], counts: list[int], rows_count: int) -> None:
    """Bulk refresh against 1..4 export servers: their own rate, the pipeline's, the ratio."""
    print()
    print(f"sweep over the number of export servers ({rows_count} rows, {os.cpu_count()} cores):")
    print(
        f"  {'servers':>7} {'render procs':>12} {'alone ch/s':>10} {'alone CPU':>10} {'pipeline ch/s':>13}"
        f" {'CPU busy':>8} {'ratio':>6} {'ceiling':>7} {'÷ ceiling':>9} {'failed':>6} {'idle':>6} {'in flight':>9}"
    )
    default = sizing()["EXPORTER_INSTANCES"]
    for count in counts:
        urls = ",".join(f"http://127.0.0.1:{PORT_BASE + 10 + k}" for k in range(1, count + 1))
        processes = render_processes_for(count)
        env = {**base_env, "EXPORTER_URLS": urls, "RENDER_CONCURRENCY": str(processes)}
        settings.EXPORTER_URLS = urls.split(",")
        Function.objects.all().delete()
        redis.Redis.from_url(settings.RESULT_BACKEND).flushdb()
        app.control.purge()
        stack = Stack(env)
        try:
            stack.start()
            rows = Function.objects.bulk_create(
                Function(expression=EXPRESSIONS[i % len(EXPRESSIONS)], dt=1, interval=1 + i % 7)
                for i in range(rows_count)
            )
            pipeline_refresh(rows[: 2 * processes])  # warm up every process and page
            cpu = Meter(stack)
            payloads = chart_requests(rows)
            alone = max(exporter_alone(payloads, stack.exporter_urls, n) for n in (count, processes))
            started = time.time()
            through, failed = cpu.measure(lambda: pipeline_refresh(rows))  # noqa: B023
            finished = time.time()
            pipeline_cpu, busy = cpu.per_chart(len(rows)), cpu.busy
            timeline = render_timeline([r.pk for r in rows])
            idle = [1 - busy_seconds(iv, started, finished) / (finished - started) for iv in timeline.values()]
            flight = [mean_depth(iv, started, finished) for iv in timeline.values()]
            alone = max(alone, cpu.measure(lambda: exporter_alone(payloads, stack.exporter_urls, processes)))  # noqa: B023
            best = ceiling(cpu.per_chart(len(rows)), pipeline_cpu)
            print(
                f"  {count:7d} {processes:12d} {alone:10.2f} {cpu.busy:10.0%} {through:13.2f} {busy:8.0%}"
                f" {through / alone:6.2f} {best:7.2f} {(through / alone / best if best else 0.0):9.2f}"
                f" {failed:6d} {statistics.mean(idle):6.1%} {statistics.mean(flight):9.2f}"
                + ("   <- the default here (deploy/sizing)" if count == default else ""),
                flush=True,
            )
        finally:
            stack.stop()
    print("  alone: the export servers' best of clients = servers and = render processes, before and after;")
    print("  alone CPU, CPU busy: CPU seconds of every process on the machine (other work included) / wall /")
    print("  cores, while the export servers run alone (last run) and during the pipeline's refresh;")
    print("  ceiling: the ratio the pipeline can reach once the CPU is full (export servers' CPU per chart")
    print("  over that plus the other stages'); ÷ ceiling: the ratio over it (issue 24's target: >= 0.9 at")
    print("  every count); idle, in flight: mean over the export servers, as above.")


# ---------------------------------------------------------------- the metrics' cost (issue 21)


# The scrape interval of the Prometheus that `make dev OPS=1` runs (deploy/lib.sh; compose's
# scrapes every 10 s): the metrics' cost is measured as they are deployed.
SCRAPE_SECONDS = 5.0


def _scrape_every(seconds: float, urls: list[str], stop: threading.Event) -> None:
    import requests

    while not stop.wait(seconds):
        for url in urls:
            with contextlib.suppress(requests.RequestException):
                requests.get(url, timeout=5)


def metrics_cost(base_env: dict[str, str], rows_count: int, rounds: int = 4) -> int:
    """CPU seconds per chart of the whole stack in a bulk refresh, metrics off and on, alternating."""
    print(
        f"metrics' cost: bulk refresh of {rows_count} rows, {rounds} rounds each way, {os.cpu_count()} cores,"
        f" every process scraped every {SCRAPE_SECONDS:g} s (make dev's Prometheus)"
    )
    print("  (own: the stack's processes, which the metrics touch; shared: PostgreSQL, RabbitMQ and Redis,")
    print("   which also serve whatever else runs on this machine)")
    print(f"  {'metrics':>7} {'charts/s':>9} {'own CPU s/chart':>15} {'+ shared':>9}   by role (s/chart)")
    totals: dict[bool, list[float]] = {False: [], True: []}
    owns: dict[bool, list[float]] = {False: [], True: []}
    by_role_runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    failed_total = 0
    # off, on, on, off, off, on, ...: a drift over the run (a table growing, a neighbour's load)
    # weighs on both sides alike instead of always on the second.
    for on in [bool((i + i // 2) % 2) for i in range(2 * rounds)]:
        env = dict(base_env)
        Function.objects.all().delete()
        redis.Redis.from_url(settings.RESULT_BACKEND).flushdb()
        app.control.purge()
        stack = Stack(env)
        urls = []
        if on:
            for offset, process in enumerate(stack.processes):
                port = PORT_BASE + 30 + offset
                process.env = {**process.env, "METRICS_PORT": str(port)}
                urls.append(f"http://127.0.0.1:{port}/metrics")
        stop = threading.Event()
        scraper = threading.Thread(target=_scrape_every, args=(SCRAPE_SECONDS, urls, stop), daemon=True)
        try:
            stack.start()
            rows = Function.objects.bulk_create(
                Function(expression=EXPRESSIONS[i % len(EXPRESSIONS)], dt=1, interval=1 + i % 7)
                for i in range(rows_count)
            )
            pipeline_refresh(rows[:8])  # warm up every process and page
            scraper.start()
            cpu = Meter(stack)
            through, failed = cpu.measure(lambda: pipeline_refresh(rows))  # noqa: B023
            failed_total += failed
            per_chart = cpu.per_chart(len(rows))
            total = sum(per_chart.values())
            own = sum(v for role, v in per_chart.items() if role not in SHARED_ROLES)
            totals[on].append(total)
            owns[on].append(own)
            by_role_runs[on].append(per_chart)
            roles = ", ".join(f"{role} {v:.4f}" for role, v in sorted(per_chart.items(), key=lambda i: -i[1])[:5])
            print(f"  {'on' if on else 'off':>7} {through:9.2f} {own:15.4f} {total:9.4f}   {roles}", flush=True)
        finally:
            stop.set()
            stack.stop()
    print("  by role, median s/chart (the metrics' code runs in the workers, datagen and the export server's node):")
    for role in sorted({r for runs in by_role_runs.values() for per in runs for r in per}):
        off_r = statistics.median(per.get(role, 0.0) for per in by_role_runs[False])
        on_r = statistics.median(per.get(role, 0.0) for per in by_role_runs[True])
        ratio = f"{on_r / off_r:.3f}" if off_r else "-"
        print(f"    {role:<22} off {off_r:.4f}  on {on_r:.4f}  on / off {ratio}")
    # Chromium runs none of the metrics' code: what it varies by is this machine's noise.
    instrumented = {
        on: [sum(v for role, v in per.items() if role not in SHARED_ROLES | {"chromium"}) for per in runs]
        for on, runs in by_role_runs.items()
    }
    off, on_ = statistics.median(instrumented[False]), statistics.median(instrumented[True])
    print("  median CPU per chart of the processes that run metrics code (own but Chromium):")
    print(f"    off {off:.4f} s, on {on_:.4f} s; on / off = {on_ / off:.3f}   (target < 1.05)")
    off, on_ = statistics.median(owns[False]), statistics.median(owns[True])
    print(f"  median own CPU per chart: off {off:.4f} s, on {on_:.4f} s; on / off = {on_ / off:.3f}")
    off, on_ = statistics.median(totals[False]), statistics.median(totals[True])
    print(f"  with the shared services: off {off:.4f} s, on {on_:.4f} s; on / off = {on_ / off:.3f}")
    return 0 if failed_total == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
