#!/usr/bin/env python3
"""Load / timing test for running Highcharts export server instances.

Starts nothing: point it at instances that are already running (start.sh).
Only loopback URLs are accepted. Every loop is bounded by --requests.

Examples (from the repository root):
  .venv/bin/python exporter/loadtest.py --url http://127.0.0.1:7801 \
      --requests 5 --concurrency 1 --points 10000
  .venv/bin/python exporter/loadtest.py --url http://127.0.0.1:7801 \
      --url http://127.0.0.1:7802 --requests 60 --concurrency 4 --points 1000
  .venv/bin/python exporter/loadtest.py --url http://127.0.0.1:7801 \
      --requests 1 --points 1000 --save /tmp/chart.png

Requests are spread round-robin over the URLs. Exit status is 0 only when
every request answered HTTP 200 with a PNG body.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import requests

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def build_chart(points: int, width: int, height: int, title: str) -> dict:
    """A line chart with a datetime x axis in milliseconds, as service 1 sends."""
    step_ms = 3_600_000  # one hour
    start_ms = 1_700_000_000_000
    data = [[start_ms + i * step_ms, round(math.sin(i / 50.0) * 100 + i / max(points, 1), 6)] for i in range(points)]
    return {
        "type": "png",
        "width": width,
        "height": height,
        "infile": {
            "chart": {"type": "line", "animation": False},
            "title": {"text": title},
            "xAxis": {"type": "datetime"},
            "yAxis": {"title": {"text": "y"}},
            "legend": {"enabled": False},
            "credits": {"enabled": False},
            "plotOptions": {"series": {"animation": False, "marker": {"enabled": False}, "turboThreshold": 0}},
            "series": [{"name": "f(t)", "data": data}],
        },
    }


def png_size(body: bytes) -> tuple[int, int] | None:
    """Width and height from the IHDR chunk, or None if the body is not a PNG."""
    if len(body) < 24 or not body.startswith(PNG_SIGNATURE) or body[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", body[16:24])


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        raise argparse.ArgumentTypeError(f"only http://127.0.0.1:PORT URLs are allowed, got {url!r}")
    return url.rstrip("/")


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--url",
        action="append",
        type=check_url,
        required=True,
        help="base URL of one running instance; repeat for several",
    )
    parser.add_argument("--requests", type=positive, default=60, help="total requests (default 60)")
    parser.add_argument("--concurrency", type=positive, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--points", type=positive, default=1000, help="points per chart (default 1000)")
    parser.add_argument("--width", type=positive, default=1000)
    parser.add_argument("--height", type=positive, default=500)
    parser.add_argument("--timeout", type=float, default=120.0, help="per-request timeout, seconds")
    parser.add_argument("--save", help="write the first PNG received to this path")
    args = parser.parse_args(argv)
    if args.requests > 10_000:
        parser.error("--requests is capped at 10000")

    payload = json.dumps(build_chart(args.points, args.width, args.height, f"{args.points} points")).encode()
    urls = itertools.cycle(args.url)
    plan = [next(urls) for _ in range(args.requests)]

    lock = threading.Lock()
    results: list[dict] = []
    saved = False
    local = threading.local()

    def one(url: str) -> None:
        nonlocal saved
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        started = time.perf_counter()
        status, error, size = None, None, None
        try:
            response = session.post(
                url + "/", data=payload, timeout=args.timeout, headers={"Content-Type": "application/json"}
            )
            status = response.status_code
            if status == 200:
                size = png_size(response.content)
                if size is None:
                    error = "200 but body is not a PNG"
                elif args.save:
                    with lock:
                        if not saved:
                            with open(args.save, "wb") as fh:
                                fh.write(response.content)
                            saved = True
            else:
                error = response.text[:200]
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - started
        with lock:
            results.append({"url": url, "status": status, "error": error, "seconds": elapsed, "size": size})

    wall_start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        list(pool.map(one, plan))
    wall = time.perf_counter() - wall_start

    failures = [r for r in results if r["error"] is not None]
    latencies = sorted(r["seconds"] for r in results if r["error"] is None)
    sizes = sorted({r["size"] for r in results if r["size"]})
    summary = {
        "urls": args.url,
        "points": args.points,
        "body_bytes": len(payload),
        "requests": len(results),
        "concurrency": args.concurrency,
        "ok": len(results) - len(failures),
        "failures": len(failures),
        "wall_seconds": round(wall, 3),
        "charts_per_second": round((len(results) - len(failures)) / wall, 2) if wall else None,
        "latency_ms": {
            "min": round(latencies[0] * 1000, 1),
            "median": round(statistics.median(latencies) * 1000, 1),
            "p95": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))] * 1000, 1),
            "max": round(latencies[-1] * 1000, 1),
        }
        if latencies
        else None,
        "png_sizes": [f"{w}x{h}" for w, h in sizes],
        "per_url": {u: sum(1 for r in results if r["url"] == u and r["error"] is None) for u in args.url},
        "first_failures": [{k: r[k] for k in ("url", "status", "error")} for r in failures[:5]],
    }
    print(json.dumps(summary, indent=2))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
