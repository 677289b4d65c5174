"""Writes: create functions, queue their refresh, store a stage's outcome.

The admin calls these; the persist task calls :func:`store_result`.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from functions.models import Function
from pipeline import canvas, status


def create_function(*, expression: str, dt: float, interval: float) -> Function:
    """Save a new function and queue its first chart (sent once the row is committed)."""
    function = Function(expression=expression.strip(), dt=dt, interval=interval)
    function.full_clean()
    function.save()
    queue_refresh([function], batch=False)
    return function


def update_function(function: Function, *, changed: Iterable[str]) -> None:
    """Save an edited function; a change of what the chart shows queues a new chart."""
    function.full_clean()
    function.save()
    if {"expression", "dt", "interval"} & set(changed):
        queue_refresh([function], batch=False)


def queue_refresh(functions: Iterable[Function], batch: bool = True) -> str | None:
    """Give each function a new run and send one group of chains, after commit.

    The newest run of a row is the one whose result is stored: an older run
    still in flight finishes, but its result is discarded (see store_result).
    With ``batch``, the runs form a batch whose progress the list shows.
    Returns the batch id.
    """
    functions = list(functions)
    if not functions:
        return None
    batch_id = uuid.uuid4().hex if batch else None
    now = timezone.now()
    jobs = []
    for function in functions:
        function.run_id = uuid.uuid4()
        function.queued_at = now
        function.state = Function.State.QUEUED
        jobs.append(
            canvas.refresh_job(
                function.pk,
                str(function.run_id),
                function.expression,
                function.interval,
                function.dt,
                batch_id,
            )
        )
    Function.objects.bulk_update(functions, ["run_id", "queued_at", "state"])
    transaction.on_commit(lambda: canvas.start_refresh(jobs))
    return batch_id


def refresh_functions(functions: Iterable[Function]) -> int:
    """The admin's bulk "Refresh": queue every given row; returns how many."""
    functions = list(functions)
    with transaction.atomic():
        queue_refresh(functions)
    return len(functions)


def _processed_at(job: dict[str, Any]) -> datetime:
    end = job.get("end")
    if isinstance(end, int | float):
        return datetime.fromtimestamp(end, tz=UTC)
    return timezone.now()


def store_result(job: dict[str, Any]) -> bool:
    """Store a run's chart or error text, if the run is still the row's latest.

    Idempotent: storing the same run twice writes the same values. Returns
    False when the run was superseded by a newer one (or the row is gone).
    """
    error = job.get("error") or ""
    png = None if error else base64.b64decode(job["png"])
    if not error and not png:
        error = 'Stage "persist" failed: the render stage returned no image'
    updated = Function.objects.filter(pk=job["function_id"], run_id=job["run_id"]).update(
        chart=png,
        error=error,
        processed_at=_processed_at(job),
        result_run=job["run_id"],
        state=Function.State.FAILED if error else Function.State.DONE,
        trace=job.get("trace") or {},
    )
    status.finish(job["function_id"], job["run_id"], job.get("batch_id"), ok=not error)
    return bool(updated)


def fail_stalled_runs() -> int:
    """Mark runs that made no progress for STALLED_AFTER_SECONDS as failed, with the reason."""
    limit = timedelta(seconds=settings.STALLED_AFTER_SECONDS)
    cutoff = timezone.now() - limit
    stalled = Function.objects.filter(state=Function.State.QUEUED, queued_at__lt=cutoff)
    live = status.row_states(stalled.values_list("pk", flat=True))
    failed = 0
    for function in stalled:
        row = live.get(function.pk)
        if row and row.run == str(function.run_id) and row.updated > cutoff.timestamp():
            continue  # a stage reported recently: still working (e.g. retrying)
        reason = (
            f"The refresh queued at {function.queued_at:%Y-%m-%d %H:%M:%S %Z} made no progress "
            f"for {limit.total_seconds():.0f} s: its work was lost (a worker or the broker "
            "went away). Run Refresh again."
        )
        failed += Function.objects.filter(pk=function.pk, run_id=function.run_id).update(
            state=Function.State.FAILED,
            error=reason,
            chart=None,
            processed_at=timezone.now(),
            result_run=function.run_id,
        )
        batch = row.batch if row and row.run == str(function.run_id) else None
        status.finish(function.pk, str(function.run_id), batch, ok=False)  # the batch counts it too
    return failed
