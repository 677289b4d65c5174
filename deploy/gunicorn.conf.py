"""gunicorn's hooks for the admin and datagen (deploy/run passes ``-c`` this file).

With ``METRICS_PORT`` set (not 0), the master serves Prometheus' ``/metrics`` there,
summed over its workers' samples (``prometheus_client``'s multiprocess mode: each
worker writes to files under ``PROMETHEUS_MULTIPROC_DIR``, which deploy/run empties
at every start); a worker that exits stops counting in the live gauges.
"""

import os


def _metrics_port() -> int:
    return int(os.environ.get("METRICS_PORT") or 0)


def when_ready(server: object) -> None:
    if not _metrics_port():
        return
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(_metrics_port(), addr=os.environ.get("METRICS_HOST") or "127.0.0.1", registry=registry)


def child_exit(server: object, worker: object) -> None:
    if _metrics_port():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
