"""Benchmark: the refresh pipeline against the export server alone, side by side in one run.

    python -m tests.bench_pipeline [--rows 100] [--adds 15]

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--adds", type=int, default=15)
    args = parser.parse_args()

    create_database()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dashboard.settings", "CELERY_LOG_LEVEL": "ERROR"}
    env["POSTGRES_DB"] = connection.settings_dict["NAME"]
    redis.Redis.from_url(settings.RESULT_BACKEND).flushdb()
    app.control.purge()
    stack = Stack(env)
    try:
        stack.start()
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
