"""Benchmark of datagen (a script, not a test). Run from the repository root:

    .venv/bin/python datagen/bench.py [--exporter-url URL] [--datagen-url URL] [--repeat N]

It prints, measured side by side in one run:

1. samples per second for 1M and 5.3M samples, raw and M4, of the bare SQL
   statement (executed and fetched through psycopg2, as the service does);
2. the M4 statement's time / numpy's time to compute the same samples in-process
   (and / numpy computing the samples plus M4), i.e. how close SQL comes to the
   machine's limit;
3. the endpoint's time (HTTP, gunicorn) / the bare statement's time for the same
   series, i.e. the service's overhead;
4. for two 100k-sample series rendered by the real export server with the
   product's chart options, the pixels that differ between the raw chart and
   the M4 chart, drawn as the line alone and as the line over its per-column
   band (what the pipeline renders), against the plot area.

``--heavy-downloads N`` instead measures the heavy slots (issue 19): N clients download
a raw series of 1,000,000 points at once (the admin's CSV download), each asking again
after ``Retry-After`` while datagen answers 503 busy, while one client asks small
requests in turn (``/validate`` and a 25-point series); it prints the small requests'
latency (median, 95th percentile, max) alone and during the downloads, side by side for
datagen as deployed (2 sync workers) with raw series not counted as heavy (as before)
and with ``DATAGEN_HEAVY_RAW_POINTS``' default.

Only 127.0.0.1 is contacted. If no datagen answers at --datagen-url (env
DATAGEN_URL), the script starts gunicorn on a free 127.0.0.1 port and stops it at the
end. The pixel part needs an export server at --exporter-url (env EXPORTER_URL,
default http://127.0.0.1:7801); it is skipped with a message if none answers.
Every loop is bounded (--repeat runs per figure, default 5; the median is kept).
The M4 statement of a big series is split into parts that PostgreSQL runs in
parallel workers (series/queries.py); the "workers" column shows planned/launched.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent / "datagen"  # the service it measures
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datagen_service.settings")
# The benchmark's own statements may take long; the service keeps its own timeout.
os.environ.setdefault("DATAGEN_STATEMENT_TIMEOUT_MS", "120000")
# Only SELECTs without tables run here: the maintenance database always exists.
os.environ.setdefault("POSTGRES_DB", "postgres")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
import requests  # noqa: E402
from django.db import connection  # noqa: E402

from series.expressions import Binary, Call, Node, Num, Unary, Var, compile_expression  # noqa: E402
from series.queries import (  # noqa: E402
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    _m4_sql,
    _raw_sql,
    decimates,
    m4_parts,
    sample_count,
)

END = 1764374400.5
EXPRESSION = "t + 2/t"
WIDTH = 1000
MINUTE_HOURS = 1 / 60
# (label, interval in days, dt in hours)
SIZES = [("1M", 1_000_000 / 1440, MINUTE_HOURS), ("5.3M", 3652.5, MINUTE_HOURS)]


def median_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time of `repeat` runs after one warm-up run."""
    fn()
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def params(interval: float, dt: float, width: int | None) -> dict[str, Any]:
    n = int(sample_count(interval, dt))
    start = END - interval * SECONDS_PER_DAY
    return {"start": start, "step": dt * SECONDS_PER_HOUR, "last": n - 1, "n": n, "w": width}


def statement(expr_sql: str, interval: float, dt: float, width: int | None) -> str:
    """The very statement the service runs for this series."""
    n = int(sample_count(interval, dt))
    if not decimates(n, width):
        return _raw_sql(expr_sql)
    return _m4_sql(expr_sql, m4_parts(n, width))


def bare_sql(expr_sql: str, interval: float, dt: float, width: int | None) -> tuple[int, str]:
    with connection.cursor() as cur:
        cur.execute(statement(expr_sql, interval, dt, width), params(interval, dt, width))
        return cur.fetchone()


def parallel_workers(expr_sql: str, interval: float, dt: float, width: int) -> str:
    """'planned/launched' parallel workers of the M4 statement, from EXPLAIN ANALYZE."""
    with connection.cursor() as cur:
        sql = "EXPLAIN (ANALYZE, TIMING OFF) " + statement(expr_sql, interval, dt, width)
        cur.execute(sql, params(interval, dt, width))
        plan = [row[0] for row in cur.fetchall()]
    planned = sum(int(line.split(":")[1]) for line in plan if "Workers Planned:" in line)
    launched = sum(int(line.split(":")[1]) for line in plan if "Workers Launched:" in line)
    return f"{planned}/{launched}"


def count_rows(n: int) -> int:
    """PostgreSQL generating n rows and counting them: the cost of a row, with nothing computed."""
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM (SELECT generate_series(0::bigint, %s::bigint - 1) AS i) AS g", [n])
        return cur.fetchone()[0]


# ------------------------------------------------------------------ numpy


def np_eval(node: Node, t: np.ndarray) -> np.ndarray | float:
    funcs = {
        "sin": np.sin,
        "cos": np.cos,
        "tan": np.tan,
        "sqrt": np.sqrt,
        "exp": np.exp,
        "ln": np.log,
        "log": np.log10,
        "log10": np.log10,
        "abs": np.abs,
        "floor": np.floor,
        "ceil": np.ceil,
        "asin": np.arcsin,
        "acos": np.arccos,
        "atan": np.arctan,
        "sinh": np.sinh,
        "cosh": np.cosh,
        "tanh": np.tanh,
        "cbrt": np.cbrt,
        "round": np.rint,
        "sign": np.sign,
    }
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Var):
        return t
    if isinstance(node, Unary):
        return -np_eval(node.operand, t)
    if isinstance(node, Binary):
        a, b = np_eval(node.left, t), np_eval(node.right, t)
        return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power}[node.op](a, b)
    if isinstance(node, Call) and node.name in funcs:
        return funcs[node.name](*(np_eval(a, t) for a in node.args))
    raise NotImplementedError(node)


def np_samples(tree: Node, interval: float, dt: float) -> tuple[np.ndarray, np.ndarray]:
    p = params(interval, dt, None)
    t = p["start"] + np.arange(p["n"], dtype=np.float64) * p["step"]
    return t, np.broadcast_to(np_eval(tree, t), t.shape)


def np_m4(tree: Node, interval: float, dt: float, width: int) -> int:
    t, y = np_samples(tree, interval, dt)
    n = len(t)
    lo = -(-np.arange(width) * n // width)
    mins = np.minimum.reduceat(y, lo)
    maxs = np.maximum.reduceat(y, lo)
    return len(mins) + len(maxs)


# ------------------------------------------------------------------ HTTP


def answers(url: str, path: str) -> bool:
    try:
        return requests.get(url.rstrip("/") + path, timeout=3).status_code == 200
    except requests.RequestException:
        return False


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gunicorn(port: int, env_extra: dict[str, str] | None = None, workers: int = 1) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATAGEN_STATEMENT_TIMEOUT_MS": "120000",
        "DATAGEN_MAX_RAW_POINTS": "6000000",
        **(env_extra or {}),
    }
    proc = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--chdir",
            str(HERE),
            "datagen_service.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "300",
            "--log-level",
            "warning",
        ],
        env=env,
    )
    for _ in range(60):
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited at start")
        if answers(f"http://127.0.0.1:{port}", "/health"):
            return proc
        time.sleep(0.25)
    proc.terminate()
    raise SystemExit("gunicorn did not start")


def endpoint(url: str, interval: float, dt: float, width: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"expression": EXPRESSION, "interval": interval, "dt": dt, "end": END}
    if width:
        body["width"] = width
    r = requests.post(url.rstrip("/") + "/api/v1/points", json=body, timeout=300)
    r.raise_for_status()
    # Only the head is decoded: parsing millions of points here would time the client.
    head = r.content[: r.content.index(b', "points": ')] + b"}"
    return json.loads(head)


# ------------------------------------------------------------------ pixels


# The pixel comparison renders the product's own chart options (the
# pipeline's charts module, installed in the development environment: a benchmark
# script may import it, the service does not).
from pipeline.charts import chart_options, plot_width  # noqa: E402

CHART_W, CHART_H = 800, 400
PLOT_W = plot_width(CHART_W)
# The product chart's plot height at 800x400 with its title, subtitle and axis
# labels (measured from the gridlines of a rendered chart: 70 px to 332 px).
PLOT_H_ESTIMATE = 262
PIXEL_FUNCTIONS = ("sin(t / 20000) + sin(t / 997) / 5", "sin(t / 2000) + sin(t / 97) / 4 + sin(t / 9) / 10")


def product_chart(expression: str, points: list[list[float]], dt: float, interval: float, band: bool) -> dict:
    """The chart the pipeline renders for these points (band=False: the M4 line alone)."""
    options = chart_options(expression, points, dt, interval, CHART_W)
    if not band:
        options["series"] = [s for s in options["series"] if s["type"] != "arearange"]
    # The raw reference has up to 100k points: drawn as the anti-aliased SVG
    # line, never through the boost module's WebGL canvas.
    options["boost"] = {"enabled": False}
    options["plotOptions"]["series"]["boostThreshold"] = 0
    return options


def render(exporter_url: str, options: dict) -> bytes:
    body = {"type": "png", "infile": options, "width": CHART_W, "height": CHART_H}
    r = requests.post(exporter_url.rstrip("/") + "/", json=body, timeout=300)
    r.raise_for_status()
    if not r.content.startswith(b"\x89PNG"):
        raise RuntimeError(f"exporter answered {r.headers.get('content-type')}, not a PNG")
    return r.content


def pixel_diff(a: bytes, b: bytes) -> tuple[int, int]:
    """(pixels that differ at all, pixels that differ by more than 64/255 in a channel), whole image."""
    from PIL import Image

    ia = np.asarray(Image.open(io.BytesIO(a)).convert("RGB"), dtype=np.int16)
    ib = np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype=np.int16)
    if ia.shape != ib.shape or ia.shape[:2] != (CHART_H, CHART_W):
        raise RuntimeError(f"unexpected image sizes: {ia.shape} vs {ib.shape}")
    d = np.abs(ia - ib).max(axis=2)
    return int((d > 0).sum()), int((d > 64).sum())


# ------------------------------------------------------------------ main


def sql_figures(compiled: Any, datagen_url_arg: str, repeat: int) -> None:
    """Part 1-3: the statement against numpy and against the endpoint."""
    gunicorn = None
    datagen_url = datagen_url_arg
    if not datagen_url or not answers(datagen_url, "/health"):
        port = free_port()
        datagen_url = f"http://127.0.0.1:{port}"
        print(f"starting gunicorn on {datagen_url} (1 worker, raw limit lifted to 6M)")
        gunicorn = start_gunicorn(port)
    try:
        print()
        print(
            f"{'series':<8}{'mode':<6}{'samples':>10}{'points':>9}{'SQL s':>9}"
            f"{'Msamples/s':>12}{'numpy s':>9}{'SQL/np':>8}{'np+M4 s':>9}{'SQL/np+M4':>10}"
            f"{'HTTP s':>9}{'HTTP/SQL':>9}{'workers':>9}"
        )
        for label, interval, dt in SIZES:
            n = int(sample_count(interval, dt))
            tree = compiled.tree
            np_time, _ = median_time(lambda: np_samples(tree, interval, dt), repeat)  # noqa: B023
            np_m4_time, _ = median_time(lambda: np_m4(tree, interval, dt, WIDTH), repeat)  # noqa: B023
            for mode, width in (("raw", None), ("M4", WIDTH)):
                sql_time, (count, _) = median_time(lambda: bare_sql(compiled.sql, interval, dt, width), repeat)  # noqa: B023
                try:
                    http_time, body = median_time(lambda: endpoint(datagen_url, interval, dt, width), repeat)  # noqa: B023
                    assert body["count"] == count and body["samples"] == n
                    http = f"{http_time:9.3f}{http_time / sql_time:9.2f}"
                except requests.RequestException as exc:
                    http = f"  ({type(exc).__name__}: {str(exc)[:40]})"
                workers = parallel_workers(compiled.sql, interval, dt, width) if width else "-"
                m4_time = sql_time  # the last mode's: M4
                print(
                    f"{label:<8}{mode:<6}{n:>10}{count:>9}{sql_time:9.3f}"
                    f"{n / sql_time / 1e6:12.2f}{np_time:9.3f}{sql_time / np_time:8.1f}"
                    f"{np_m4_time:9.3f}{sql_time / np_m4_time:10.1f}{http}{workers:>9}"
                )
            # The same M4 statement in the backend alone (no parallel workers), side by side.
            with connection.cursor() as cur:
                cur.execute("SET max_parallel_workers_per_gather = 0")
            try:
                serial, _ = median_time(lambda: bare_sql(compiled.sql, interval, dt, WIDTH), repeat)  # noqa: B023
            finally:
                with connection.cursor() as cur:
                    cur.execute("RESET max_parallel_workers_per_gather")
            print(
                f"{label:<8}{'M4/1':<6}{n:>10}{'':>9}{serial:9.3f}{n / serial / 1e6:12.2f}{np_time:9.3f}"
                f"{serial / np_time:8.1f}{np_m4_time:9.3f}{serial / np_m4_time:10.1f}{'':>18}{'0/0':>9}"
            )
            # The engine's floor: the same M4 statement for f(t) = t (no arithmetic), and
            # PostgreSQL only generating the sample rows and counting them, in one process.
            identity = compile_expression("t").sql
            bare_t, _ = median_time(lambda: bare_sql(identity, interval, dt, WIDTH), repeat)  # noqa: B023
            rows_only, _ = median_time(lambda: count_rows(n), repeat)  # noqa: B023
            for mode, seconds, workers in (
                ("M4 t", bare_t, parallel_workers(identity, interval, dt, WIDTH)),
                ("rows", rows_only, "0/0"),
            ):
                print(
                    f"{label:<8}{mode:<6}{n:>10}{'':>9}{seconds:9.3f}{n / seconds / 1e6:12.2f}{np_time:9.3f}"
                    f"{seconds / np_time:8.1f}{np_m4_time:9.3f}{seconds / np_m4_time:10.1f}{'':>18}{workers:>9}"
                )
            target = " (issue 24's target for the 5.3 M series: <= 3)" if n > 5_000_000 else ""
            print(f"{label:<8}M4 ÷ the executor's floor (rows): {m4_time / rows_only:.1f}{target}")
        print(
            "SQL s: bare statement executed and fetched via psycopg2; HTTP s: POST "
            "/api/v1/points end to end;\nnumpy s: the same samples computed in-process; "
            "np+M4: plus min/max per column (numpy reduceat); workers: parallel workers\n"
            "planned/launched for the M4 statement (EXPLAIN ANALYZE); M4/1: the same statement with\n"
            "parallel workers off for this session (the backend alone); M4 t: the M4 statement of\n"
            "f(t) = t (no arithmetic); rows: PostgreSQL generating the n sample indexes and counting\n"
            "them, nothing else, in one process (at best half that on 2 cores): the executor's floor.\n"
            "SQL/np target: <= 5 for M4."
        )
    finally:
        if gunicorn is not None:
            gunicorn.terminate()
            gunicorn.wait(timeout=30)


# ------------------------------------------------------------------ heavy downloads

SMALL_VALIDATE = {"expression": EXPRESSION, "interval": 1, "dt": 1}
SMALL_SERIES = {**SMALL_VALIDATE, "end": END}  # 25 points
DOWNLOAD = {"expression": EXPRESSION, "interval": 999_999 / 1440, "dt": MINUTE_HOURS, "end": END}  # 1,000,000 raw


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def small_requests(url: str, until: threading.Event, least: int = 0) -> list[float]:
    """Latencies of small requests asked in turn (validate, 25-point series) until ``until`` is set."""
    times: list[float] = []
    session = requests.Session()
    while not until.is_set() or len(times) < least:
        path, body = ("/api/v1/validate", SMALL_VALIDATE) if len(times) % 2 == 0 else ("/api/v1/points", SMALL_SERIES)
        t0 = time.perf_counter()
        r = session.post(url + path, json=body, timeout=120)
        times.append(time.perf_counter() - t0)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
        until.wait(0.02)  # a person's pace, roughly: not a load of its own
    return times


def download(url: str, busy: list[int]) -> float:
    """One raw download of 1 M points, asking again after Retry-After while busy; its wall time."""
    t0 = time.perf_counter()
    while True:
        with requests.post(url + "/api/v1/points", json=DOWNLOAD, timeout=300, stream=True) as r:
            if r.status_code == 503:
                busy.append(1)
                wait = float(r.headers.get("Retry-After", "1"))
            else:
                assert r.status_code == 200, (r.status_code, r.text[:200])
                size = sum(len(chunk) for chunk in r.iter_content(1 << 16))
                assert size > 20_000_000, size
                return time.perf_counter() - t0
        time.sleep(wait)  # what Retry-After asks of a client


def heavy_download_figures(downloads: int) -> None:
    """Small requests' latency alone and during ``downloads`` raw 1 M downloads, before and now."""
    print(
        f"{downloads} raw downloads of 1,000,000 points at once (asking again after Retry-After when busy)"
        " vs small requests in turn (/validate, a 25-point series); datagen under gunicorn, 2 sync workers,"
        " 1 heavy slot"
    )
    print(
        f"{'raw series counted as heavy':<34}{'alone p50/p95/max s':>22}{'during p50/p95/max s':>24}"
        f"{'small n':>9}{'all done s':>12}{'each p50 s':>12}{'503s':>6}"
    )
    for label, extra in (
        ("never (before: limit 1,000,000)", {"DATAGEN_HEAVY_RAW_POINTS": "1000000"}),
        ("over 100,000 points (default)", {}),
    ):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_gunicorn(
            port,
            {"DATAGEN_MAX_RAW_POINTS": "1000000", "DATAGEN_HEAVY_SLOTS": "1", "DATAGEN_LOG_LEVEL": "ERROR", **extra},
            workers=2,
        )
        try:
            stop = threading.Event()
            stop.set()
            alone = small_requests(url, stop, least=60)
            busy: list[int] = []
            done = threading.Event()
            with ThreadPoolExecutor(downloads + 1) as pool:
                small = pool.submit(small_requests, url, done)
                t0 = time.perf_counter()
                try:
                    heavy = [pool.submit(download, url, busy) for _ in range(downloads)]
                    walls = [future.result() for future in heavy]
                    total = time.perf_counter() - t0
                finally:
                    done.set()
                during = small.result()
        finally:
            server.terminate()
            server.wait(timeout=30)
        figures = [f"{statistics.median(xs):.3f}/{percentile(xs, 0.95):.3f}/{max(xs):.3f}" for xs in (alone, during)]
        print(
            f"{label:<34}{figures[0]:>22}{figures[1]:>24}{len(during):>9}{total:12.1f}{statistics.median(walls):12.1f}{len(busy):>6}"
        )
    print("target: small requests' p95 < 0.2 s during the downloads")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exporter-url", default=os.environ.get("EXPORTER_URL", "http://127.0.0.1:7801"))
    ap.add_argument("--datagen-url", default=os.environ.get("DATAGEN_URL", ""))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pixels-only", action="store_true", help="only the pixel comparison")
    ap.add_argument(
        "--heavy-downloads", type=int, default=0, metavar="N", help="only the heavy-slot run: N raw downloads at once"
    )
    args = ap.parse_args()
    repeat = max(1, min(args.repeat, 20))
    for url in (args.exporter_url, args.datagen_url):
        host = url.split("//")[-1].split(":")[0].split("/")[0]
        if url and host not in ("127.0.0.1", "localhost"):
            raise SystemExit(f"only 127.0.0.1 is benchmarked, not {url}")

    compiled = compile_expression(EXPRESSION)
    print(
        f"datagen benchmark: f(t) = {EXPRESSION}, end = {END}, M4 width = {WIDTH}, "
        f"median of {repeat} runs, {os.cpu_count()} cores, after 1 warm-up"
    )
    with connection.cursor() as cur:
        cur.execute("SELECT version()")
        print(cur.fetchone()[0].split(",")[0])
    bare_sql(compiled.sql, 1, 1, None)  # connect, warm up
    if args.heavy_downloads:
        heavy_download_figures(max(1, min(args.heavy_downloads, 50)))
        return

    if not args.pixels_only:
        sql_figures(compiled, args.datagen_url, repeat)
    print()
    if not answers(args.exporter_url, "/health"):
        print(
            f"pixel comparison skipped: no export server answers at {args.exporter_url} "
            "(start one with exporter/start.sh, or pass --exporter-url)"
        )
        return
    interval, dt = 100_000 / 1440 / 4, MINUTE_HOURS / 4  # 100k samples at 15 s steps
    plot = PLOT_W * PLOT_H_ESTIMATE
    print(
        f"pixel comparison: 100001 samples, the product's chart {CHART_W}x{CHART_H} (anti-aliased SVG),"
        f" M4 to the plot width {PLOT_W}; % of the plot area {PLOT_W}x{PLOT_H_ESTIMATE} = {plot} px"
    )
    for expr in PIXEL_FUNCTIONS:
        c = compile_expression(expr)
        raw = json.loads(bare_sql(c.sql, interval, dt, None)[1])
        count, m4_json = bare_sql(c.sql, interval, dt, PLOT_W)
        m4 = json.loads(m4_json)
        print(f"  f(t) = {expr}")
        t0 = time.perf_counter()
        raw_png = render(args.exporter_url, product_chart(expr, raw, dt, interval, band=False))
        raw_render = time.perf_counter() - t0
        for band, name in ((False, "M4 line       "), (True, "M4 line + band")):
            t0 = time.perf_counter()
            m4_png = render(args.exporter_url, product_chart(expr, m4, dt, interval, band=band))
            m4_render = time.perf_counter() - t0
            any_diff, big_diff = pixel_diff(raw_png, m4_png)
            print(
                f"    {name} ({count} pts): differing pixels {any_diff} = {100 * any_diff / plot:.3f}%,"
                f" >64 levels: {big_diff} = {100 * big_diff / plot:.3f}% of plot (target <= 0.5%);"
                f" render raw {raw_render:.2f} s, M4 {m4_render:.2f} s"
            )


if __name__ == "__main__":
    main()
