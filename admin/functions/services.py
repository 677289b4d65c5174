"""Writes: create functions, queue their refresh, store a stage's outcome.

The admin calls these; the persist task calls :func:`store_result`, the
sweep :func:`fail_stalled_runs`. PostgreSQL is the truth: a row's ``run_id`` is
the run that must win, and only that run's outcome is stored.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, F, Func, UUIDField
from django.utils import timezone

from functions.models import Function
from pipeline import canvas, jobs, status

log = logging.getLogger(__name__)

# The fields an edit may change; a change of any of them queues a new chart.
EDITABLE_FIELDS = ("expression", "dt", "interval")


def create_function(*, expression: str, dt: float, interval: float) -> Function:
    """Save a new function and queue its first chart (sent once the row is committed)."""
    function = Function(expression=expression.strip(), dt=dt, interval=interval)
    function.full_clean()
    with transaction.atomic():
        function.save()
        queue_refresh([function], batch=False)
    return function


def update_function(pk: int, **changes: Any) -> list[str]:
    """Save an edit: the fields whose value differs from the row's, under a row lock.

    The run id, state and stored result are neither read before the lock nor
    written back, so an edit never clobbers a result persisted meanwhile or a
    newer run. A change of what the chart shows queues a new chart. Returns the
    names of the fields that changed (empty: nothing was written).
    """
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    if "expression" in changes:
        changes["expression"] = str(changes["expression"]).strip()
    with transaction.atomic():
        function = Function.objects.select_for_update().get(pk=pk)
        changed = [name for name, value in changes.items() if getattr(function, name) != value]
        for name in changed:
            setattr(function, name, changes[name])
        if not changed:
            return []
        function.full_clean()
        function.save(update_fields=changed)
        queue_refresh([function], batch=False)
    return changed


def queue_refresh(functions: Iterable[Function], batch: bool = True) -> str | None:
    """Give each function a new run (in PostgreSQL) and send one chain per row, after commit.

    The newest run of a row is the one whose result is stored: an older run
    still in flight stops at its next stage or, at the latest, is discarded by
    store_result. With ``batch``, the runs form a batch whose progress the
    list shows. Returns the batch id.
    """
    functions = list(functions)
    if not functions:
        return None
    batch_id = uuid.uuid4().hex if batch else None
    pks = [function.pk for function in functions]
    with transaction.atomic():
        # One UPDATE for any number of rows. PostgreSQL draws the run ids and
        # stamps them with its clock at the moment each row is written (after
        # any concurrent refresh of the row committed): the stages order runs
        # by this time, so there is one clock, whatever host queued the run.
        Function.objects.filter(pk__in=pks).update(
            run_id=Func(function="gen_random_uuid", output_field=UUIDField()),
            queued_at=Func(function="clock_timestamp", output_field=DateTimeField()),
            state=Function.State.QUEUED,
        )
        runs = {
            pk: (run, at)
            for pk, run, at in Function.objects.filter(pk__in=pks).values_list("pk", "run_id", "queued_at")
        }
    to_send = []
    for function in functions:
        if function.pk not in runs:
            continue  # deleted meanwhile
        function.run_id, function.queued_at = runs[function.pk]
        function.state = Function.State.QUEUED
        to_send.append(
            jobs.new_job(
                function.pk,
                str(function.run_id),
                function.expression,
                function.interval,
                function.dt,
                batch_id,
                function.queued_at.timestamp(),
            )
        )
    transaction.on_commit(lambda: send_runs(to_send))
    return batch_id


def send_runs(to_send: list[jobs.Job]) -> None:
    """Send committed runs; a broker that does not take them fails them with the reason."""
    try:
        canvas.start_refresh(to_send)
    except canvas.SendFailed as exc:
        log.error("%d runs not sent: %s", len(to_send), exc)
        reason = f"The refresh could not be sent: {exc}. Run Refresh again when the broker is back."
        fail_runs(((job["function_id"], job["run_id"], job["batch_id"]) for job in to_send), reason)


def refresh_functions(functions: Iterable[Function]) -> int:
    """The admin's bulk "Refresh": queue every given row; returns how many."""
    functions = list(functions)
    queue_refresh(functions)  # its own transaction; the chains are sent when it commits
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
    Raises redis.RedisError when the batch could not count the run (the
    persist task retries; the row is stored already).
    """
    error = ""
    if job.get("superseded"):
        updated = 0
    else:
        error = job.get("error") or ""
        png = None if error else base64.b64decode(job.get("png") or "")
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
        if not updated:
            log.info("run %s: superseded by a newer run of row %s, not stored", job["run_id"], job["function_id"])
    outcome = status.SUPERSEDED if not updated else (status.FAILED if error else status.DONE)
    status.finish(job["function_id"], job["run_id"], job.get("batch_id"), outcome)
    return bool(updated)


def fail_run(function_id: int, run_id: str, batch_id: str | None, reason: str) -> bool:
    """Store ``reason`` as the outcome of run ``run_id`` if it is still queued and the row's latest."""
    return fail_runs([(function_id, run_id, batch_id)], reason) == 1


def fail_runs(runs: Iterable[tuple[int, str, str | None]], reason: str) -> int:
    """Store ``reason`` as the outcome of each run ``(function id, run id, batch id)`` that is
    still queued and its row's latest; returns how many were failed.

    One UPDATE for all of them (after one SELECT … FOR UPDATE that says which rows
    it fails), and one Redis pipeline to count them in their batches. A row whose
    run id is no longer the given one (a newer run took it) or that is no longer
    queued (its result landed) is left alone: run ids are drawn per row by
    PostgreSQL (``gen_random_uuid``), so a row matches only its own run.
    """
    batches = {str(run_id): (function_id, batch_id) for function_id, run_id, batch_id in runs}
    if not batches:
        return 0
    with transaction.atomic():
        # Locked until the UPDATE commits: what is counted below is exactly what it failed.
        failed = list(
            Function.objects.select_for_update()
            .filter(
                pk__in={function_id for function_id, _ in batches.values()},
                run_id__in=list(batches),
                state=Function.State.QUEUED,
            )
            .values_list("pk", "run_id")
        )
        Function.objects.filter(pk__in=[pk for pk, _ in failed]).update(
            state=Function.State.FAILED,
            error=reason,
            chart=None,
            processed_at=timezone.now(),
            result_run=F("run_id"),
        )
    try:
        status.finish_many(((pk, str(run), batches[str(run)][1]) for pk, run in failed), status.FAILED)
    except redis.RedisError as exc:
        log.warning("%d failed runs could not be counted in their batches: %s", len(failed), exc)
    return len(failed)


def fail_stalled_runs() -> int:
    """Mark runs that made no progress for STALLED_AFTER_SECONDS as failed, with the reason.

    A run waiting behind others in a deep queue is not stalled: while any stage
    queue holds messages (or the broker cannot be asked), nothing is failed.
    """
    limit = timedelta(seconds=settings.STALLED_AFTER_SECONDS)
    cutoff = timezone.now() - limit
    # Only what the sweep reads: a queued row may still hold its previous chart.
    stalled = list(
        Function.objects.filter(state=Function.State.QUEUED, queued_at__lt=cutoff).only("pk", "run_id", "queued_at")
    )
    if not stalled:
        return 0
    waiting = canvas.queued_messages()
    if waiting != 0:
        log.info("sweep: %s messages wait in the stage queues, no run counts as stalled", waiting)
        return 0
    live = status.row_statuses(function.pk for function in stalled)
    failed = 0
    for function in stalled:
        row = live.get(function.pk)
        own = row if row and row.run == str(function.run_id) else None
        if own and own.updated > cutoff.timestamp():
            continue  # a stage reported recently: still working (e.g. retrying)
        cause = f" The last failure seen: {own.note}" if own and own.note else ""
        reason = (
            f"The refresh queued at {function.queued_at:%Y-%m-%d %H:%M:%S %Z} made no progress "
            f"for {limit.total_seconds():.0f} s while no stage queue held any work: its work was lost "
            f"(a worker or the broker went away).{cause} Run Refresh again."
        )
        failed += fail_run(function.pk, str(function.run_id), own.batch if own else None, reason)
    return failed
