"""gunicorn's hooks for the admin and datagen (deploy/run passes ``-c`` this file).

With ``METRICS_PORT`` set (not 0), the master serves Prometheus' ``/metrics`` there,
summed over its workers' samples (``prometheus_client``'s multiprocess mode: each
worker writes to files under ``PROMETHEUS_MULTIPROC_DIR``, which deploy/run empties
at every start); a worker that exits stops counting in the live gauges.

Logging: gunicorn's own records (the master's and the workers', the access lines) go
through the service's logging set-up, one JSON line each (README, "Logs"): the admin's
``pipeline.logs.admin_logging``, datagen's ``series.logs.datagen_logging``, picked by the
``DJANGO_SETTINGS_MODULE`` deploy/run names (both read only their settings' schema).
"""

import importlib
import os
from typing import Any

_LOGGING = {
    "dashboard.settings": ("pipeline.logs", "admin_logging"),
    "datagen_service.settings": ("series.logs", "datagen_logging"),
}


def _logconfig_dict() -> dict[str, Any]:
    module, function = _LOGGING.get(os.environ.get("DJANGO_SETTINGS_MODULE", ""), ("", ""))
    return getattr(importlib.import_module(module), function)() if module else {}


logconfig_dict = _logconfig_dict()


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
