"""Build and start the refresh of functions: a parallel group of chains.

This is the pipeline's public entry point for the admin::

    job = refresh_job(function_id, run_id, expression, interval, dt)
    start_refresh([job, ...])
"""

from __future__ import annotations

import time
from typing import Any

from celery import chain, group
from celery.canvas import Signature

from pipeline import status
from pipeline.celery import PERSIST_TASK, POINTS_TASK, RENDER_TASK, app


def refresh_job(
    function_id: int,
    run_id: str,
    expression: str,
    interval: float,
    dt: float,
    batch_id: str | None = None,
) -> dict[str, Any]:
    """The message that travels down one chain."""
    return {
        "function_id": function_id,
        "run_id": run_id,
        "batch_id": batch_id,
        "expression": expression,
        "interval": interval,
        "dt": dt,
        "queued_at": time.time(),
        "trace": {},
    }


def refresh_chain(job: dict[str, Any]) -> Signature:
    """points -> render -> persist for one row; each task is routed to its own queue."""
    return chain(
        app.signature(POINTS_TASK, args=(job,)),
        app.signature(RENDER_TASK),
        app.signature(PERSIST_TASK),
    )


def start_refresh(jobs: list[dict[str, Any]]) -> None:
    """Mark the rows queued in Redis and send their chains as one parallel group.

    The jobs of one call form one batch (they share ``batch_id``).
    """
    if not jobs:
        return
    batch_id = jobs[0]["batch_id"]
    status.start_runs(((job["function_id"], job["run_id"]) for job in jobs), batch_id)
    group(refresh_chain(job) for job in jobs).apply_async()
