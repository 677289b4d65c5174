"""Writes: create and edit functions, queue and send their runs, store a run's outcome, sweep.

The admin calls these; the persist task calls :func:`store_result`, the sweep
:func:`sweep_runs`. PostgreSQL alone decides (``functions.models.Run``): a row's
current run, each run's outcome (only forward: queued → done | failed |
superseded), whether it was sent, and which batch it belongs to.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Now
from django.utils import timezone

from functions.models import OUTCOME_CHANNEL, Batch, Function, Run
from pipeline import api

log = logging.getLogger(__name__)

# The fields an edit may change; a change of any of them queues a new chart.
EDITABLE_FIELDS = ("expression", "dt", "interval")
# The schedule: a change takes effect at once (the next time is computed), and queues no chart.
SCHEDULE_FIELDS = ("refresh_every",)


def create_function(*, expression: str, dt: float, interval: float, refresh_every: int | None = None) -> Function:
    """Save a new function and queue its first chart (sent once the row is committed)."""
    function = Function(expression=expression.strip(), dt=dt, interval=interval)
    function.full_clean()
    with transaction.atomic():
        function.save()
        if refresh_every:
            set_schedule([function.pk], refresh_every)
        queue_refresh([function.pk], batch=False)
    function.refresh_from_db()
    return function


def update_function(pk: int, **changes: Any) -> list[str]:
    """Save an edit: the fields whose value differs from the row's, under a row lock.

    The run id, state and stored result are neither read before the lock nor
    written back, so an edit never clobbers a result persisted meanwhile or a
    newer run. A change of what the chart shows queues a new chart (drawn from
    the values saved here: the run copies them under the same lock). Returns the
    names of the fields that changed (empty: nothing was written).
    """
    unknown = set(changes) - set(EDITABLE_FIELDS) - set(SCHEDULE_FIELDS)
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
        if "refresh_every" in changed:
            function.next_refresh_at = first_refresh_at(pk, function.refresh_every, timezone.now())
            changed.append("next_refresh_at")
        function.full_clean()
        function.save(update_fields=changed)
        if set(changed) & set(EDITABLE_FIELDS):
            queue_refresh([pk], batch=False)
    return [name for name in changed if name != "next_refresh_at"]


def _clock() -> datetime:
    """PostgreSQL's clock now (not the transaction's start): runs of a row are ordered by it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


# The runs of queue_refresh, each copying its row (locked) as it is now.
_INSERT_RUNS = """
INSERT INTO functions_run (id, function_id, batch_id, expression, dt, interval, queued_at, sends, state)
SELECT gen_random_uuid(), id, %s, expression, dt, interval, %s, 0, %s FROM functions_function
WHERE id = ANY(%s) ORDER BY id
RETURNING id, function_id, expression, dt, interval
"""


def queue_refresh(pks: Iterable[int], batch: bool = True) -> str | None:
    """Give each row a new run and send one chain per row once the transaction commits.

    Under the rows' locks (taken in id order): the runs still queued for these
    rows become superseded, and each new run copies the row's expression, dt and
    interval as they are now, so the newest run always draws the newest edit.
    With ``batch``, the runs form a batch whose progress the list shows. Returns
    the batch id.
    """
    pks = sorted(set(pks))
    if not pks:
        return None
    with transaction.atomic():
        rows = list(Function.objects.select_for_update().filter(pk__in=pks).order_by("pk").values_list("pk", flat=True))
        if not rows:
            return None
        superseded = Run.objects.filter(function_id__in=pks, state=Run.State.QUEUED).update(
            state=Run.State.SUPERSEDED, finished_at=Now()
        )
        transaction.on_commit(lambda: api.run_finished("superseded", count=superseded))
        group = Batch.objects.create() if batch else None
        queued_at = _clock()  # after the locks: later than any run of these rows queued before
        # Two statements for any number of rows (Django's bulk_create and bulk_update cost
        # 0.1 s and 0.5 s of Python per 1,000 rows): each run copies its row as it is under the lock.
        with connection.cursor() as cursor:
            cursor.execute(
                _INSERT_RUNS,
                [group.id if group else None, queued_at, Run.State.QUEUED, rows],
            )
            created = cursor.fetchall()
            cursor.execute(
                "UPDATE functions_function AS f SET run_id = v.run_id, state = %s"
                " FROM unnest(%s::bigint[], %s::uuid[]) AS v(id, run_id) WHERE f.id = v.id",
                [Function.State.QUEUED, [pk for _, pk, *_ in created], [str(run_id) for run_id, *_ in created]],
            )
        # The jobs straight from the rows PostgreSQL returned (no model instance per run).
        batch_id, at = (str(group.id) if group else None), queued_at.timestamp()
        to_send = [
            api.new_job(pk, str(run_id), expression, interval, dt, batch_id, at)
            for run_id, pk, expression, dt, interval in created
        ]
        transaction.on_commit(lambda: send_runs(to_send))
    return str(group.id) if group else None


def job_of(run: Run) -> api.Job:
    """The message that starts run ``run``'s chain, built from the run as PostgreSQL holds it."""
    return api.new_job(
        run.function_id,
        str(run.id),
        run.expression,
        run.interval,
        run.dt,
        str(run.batch_id) if run.batch_id else None,
        run.queued_at.timestamp(),
        send=run.sends + 1,
    )


def send_runs(to_send: list[api.Job]) -> int:
    """Send committed runs and record which the broker confirmed; returns how many.

    A run the broker did not take stays queued and unsent: the sweep sends it
    later (it is never failed for that). A crash before this records anything
    leaves the runs unsent too, with the same ending.
    """
    try:
        sent = api.start_refresh(to_send)
    except api.SendFailed as exc:
        log.error(
            "%d of %d runs not sent (the sweep sends them later): %s", len(to_send) - len(exc.sent), len(to_send), exc
        )
        sent = exc.sent
    if sent:  # one array parameter, not an IN list of a thousand
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE functions_run SET sent_at = now(), sends = sends + 1 WHERE id = ANY(%s::uuid[])",
                [[str(run_id) for run_id in sent]],
            )
    return len(sent)


def refresh_functions(functions: Iterable[Function]) -> int:
    """The admin's bulk "Refresh": queue every given row in one batch; returns how many."""
    pks = [function.pk for function in functions]
    queue_refresh(pks)  # its own transaction; the chains are sent when it commits
    return len(pks)


def _processed_at(job: dict[str, Any]) -> datetime:
    end = job.get("end")
    if isinstance(end, int | float):
        return datetime.fromtimestamp(end, tz=UTC)
    return timezone.now()


def _finish(run_id: str, state: str) -> Run | None:
    """Move run ``run_id`` from queued to ``state``, locking its row first; None if it was not queued.

    Only a queued run moves: a duplicate of a finished run (a redelivery, a re-send)
    and a superseded run change nothing.
    """
    run = Run.objects.filter(pk=run_id).only("function_id").first()
    if run is None:
        return None
    Function.objects.select_for_update().filter(pk=run.function_id).only(
        "pk"
    ).first()  # the row first, as queue_refresh
    moved = Run.objects.filter(pk=run_id, state=Run.State.QUEUED).update(state=state, finished_at=Now())
    return run if moved else None


def store_result(job: dict[str, Any]) -> bool:
    """Store a run's chart or error text, if the run is still queued (so the row's current run).

    Idempotent and forward-only: a duplicate of the same run after its outcome
    landed changes nothing. Returns whether this call stored the outcome.
    """
    if job.get("superseded"):
        return False  # PostgreSQL superseded it when the newer run was queued
    error = job.get("error") or ""
    code, params = (job.get("cause") or "", job.get("error_params") or {}) if error else ("", {})
    png = None if error else base64.b64decode(job.get("png") or "")
    if not error and not png:
        error = 'Stage "persist" failed: the render stage returned no image'
        code, params = "no_image", {"stage": "persist"}
    with transaction.atomic():
        run = _finish(job["run_id"], Run.State.FAILED if error else Run.State.DONE)
        if run is None:
            log.info("run %s: not queued any more (superseded, or stored before), nothing stored", job["run_id"])
            return False
        outcome: dict[str, Any] = {
            "error": error,
            "error_code": code,
            "error_params": params,
            "processed_at": _processed_at(job),
            "result_run": job["run_id"],
            "state": Function.State.FAILED if error else Function.State.DONE,
            "trace": job.get("trace") or {},
        }
        if png:
            outcome["chart"] = png  # a failed run keeps the last chart drawn
        if Function.objects.filter(pk=run.function_id, run_id=job["run_id"]).update(**outcome):
            _announce([run.function_id])
    return True


def _announce(function_ids: list[int]) -> None:
    """Tell whoever waits for these rows' outcome (an Add: :func:`selectors.wait_for_outcome`).
    PostgreSQL delivers the notification when this transaction commits, and never if it rolls back."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_notify(%s, id::text) FROM unnest(%s::bigint[]) AS id", [OUTCOME_CHANNEL, function_ids]
        )


def fail_runs(run_ids: Iterable[str], reason: str, code: str = "", params: dict[str, Any] | None = None) -> int:
    """Store ``reason`` (with its ``code`` and ``params``, see :mod:`functions.messages`) as the
    outcome of each given run that is still queued; returns how many.

    Forward-only like :func:`store_result` (a run already finished is left alone),
    and the row keeps its last chart.
    """
    ids = list(run_ids)
    if not ids:
        return 0
    with transaction.atomic():
        rows = Run.objects.filter(pk__in=ids).values_list("function_id", flat=True)
        list(Function.objects.select_for_update().filter(pk__in=rows).order_by("pk").values_list("pk"))
        failed = list(Run.objects.filter(pk__in=ids, state=Run.State.QUEUED).values_list("pk", "function_id"))
        Run.objects.filter(pk__in=[pk for pk, _ in failed]).update(state=Run.State.FAILED, finished_at=Now())
        Function.objects.filter(pk__in=[row for _, row in failed], run_id__in=[pk for pk, _ in failed]).update(
            state=Function.State.FAILED,
            error=reason,
            error_code=code,
            error_params=params or {},
            processed_at=Now(),
            result_run=F("run_id"),
            trace={},
        )
        _announce([row for _, row in failed])
        transaction.on_commit(lambda: api.run_finished("failed", "lost", count=len(failed)))
    return len(failed)


@dataclass(frozen=True)
class Swept:
    sent: int  # unsent runs sent (the admin died or the broker was away when they were queued)
    resent: int  # sent runs with no sign of life sent again
    failed: int  # runs sent PIPELINE_MAX_SENDS times without an outcome


def sweep_runs() -> Swept:
    """Send what was never sent, send again what went quiet, fail what never comes back.

    One query picks the queued runs due: unsent for ``RESEND_UNSENT_AFTER_SECONDS``
    (the admin was killed between its commit and its send, or the broker was
    away), or sent ``STALLED_AFTER_SECONDS`` ago with no stage heard of since. A
    quiet run is sent again (stages are idempotent and outcomes forward-only: a
    duplicate costs work, never a result), but only while no stage queue holds
    ready messages, so a deep queue is left to drain; after ``MAX_SENDS`` sends it
    fails with the reason, keeping the row's last chart. Runs are claimed under
    row locks with SKIP LOCKED, so a second sweep at the same moment sends none
    of them twice.
    """
    now = timezone.now()
    unsent_before = now - timedelta(seconds=settings.RESEND_UNSENT_AFTER_SECONDS)
    quiet_before = now - timedelta(seconds=settings.STALLED_AFTER_SECONDS)
    due_now = Q(sent_at__isnull=True, queued_at__lt=unsent_before) | Q(sent_at__lt=quiet_before)
    due = list(
        Run.objects.filter(due_now, state=Run.State.QUEUED)
        .only("id", "function_id", "sent_at", "sends")
        .order_by("queued_at")[: settings.SWEEP_LIMIT]
    )
    if not due:
        return Swept(0, 0, 0)
    unsent = [run.id for run in due if run.sent_at is None]
    quiet = [run for run in due if run.sent_at is not None]
    if quiet:  # a stage heard of since (a retry, a long render): not quiet
        live = api.row_statuses(run.function_id for run in quiet)
        quiet = [
            run
            for run in quiet
            if not (
                (row := live.get(run.function_id)) and row.run == str(run.id) and row.updated > quiet_before.timestamp()
            )
        ]
    lost = [str(run.id) for run in quiet if run.sends >= settings.MAX_SENDS]
    again = [run.id for run in quiet if run.sends < settings.MAX_SENDS]
    if again and api.queued_messages() != 0:
        log.info("sweep: the stage queues hold work (or cannot be asked): %d quiet runs wait", len(again))
        again = []
    lost_params = {"sends": settings.MAX_SENDS, "seconds": settings.STALLED_AFTER_SECONDS}
    failed = fail_runs(lost, _lost_reason(now, settings.MAX_SENDS), "lost", lost_params) if lost else 0
    with transaction.atomic():
        claimed = list(
            Run.objects.select_for_update(skip_locked=True)
            .filter(due_now, pk__in=unsent + again, state=Run.State.QUEUED)
            .order_by("queued_at")
        )
        # sent_at set now: a sweep after this one's commit does not take them either.
        Run.objects.filter(pk__in=[run.id for run in claimed]).update(sent_at=Now())
    to_send = [job_of(run) for run in claimed]
    sent = send_runs(to_send) if to_send else 0
    if sent < len(to_send):  # the broker is away: unsent again, for the next sweep
        Run.objects.filter(pk__in=[job["run_id"] for job in to_send[sent:]], sends=0).update(sent_at=None)
    resent = sum(run.sends > 0 for run in claimed)
    if claimed or failed:
        log.warning(
            "sweep: sent %d unsent runs, %d quiet runs again; failed %d lost runs",
            len(claimed) - resent,
            resent,
            failed,
        )
    return Swept(len(claimed) - resent, resent, failed)


def prune_history() -> int:
    """Delete finished runs older than ``RUN_HISTORY_SECONDS`` (at most ``SWEEP_LIMIT`` per call),
    never a row's current or stored run, and the batches left empty; returns how many runs."""
    before = timezone.now() - timedelta(seconds=settings.RUN_HISTORY_SECONDS)
    current = Function.objects.filter(Q(run_id=OuterRef("pk")) | Q(result_run=OuterRef("pk")))
    old = (
        Run.objects.filter(finished_at__lt=before)
        .exclude(state=Run.State.QUEUED)
        .exclude(Exists(current))
        .values_list("pk", flat=True)[: settings.SWEEP_LIMIT]
    )
    deleted, _ = Run.objects.filter(pk__in=list(old)).delete()
    if deleted:
        Batch.objects.filter(started_at__lt=before).exclude(Exists(Run.objects.filter(batch=OuterRef("pk")))).delete()
    return deleted


def _lost_reason(now: datetime, sends: int) -> str:
    return (
        f"This refresh was sent {sends} times and no stage reported any progress for "
        f"{settings.STALLED_AFTER_SECONDS:.0f} s after each send (checked {now:%Y-%m-%d %H:%M:%S %Z}): "
        "its work keeps getting lost (a worker or the broker goes away). The last chart is kept. Run Refresh again."
    )


# ----------------------------------------------------------------------------- the schedule


def first_refresh_at(pk: int, every: int | None, now: datetime) -> datetime | None:
    """The first scheduled time of row ``pk`` after ``now`` (None: no schedule).

    Each row keeps its own phase within its period (a multiplicative hash of its
    id, so consecutive ids land far apart), so rows sharing a period are spread over
    it instead of all falling due at once; the first time is within one period.
    """
    if not every:
        return None
    phase = (pk * 2654435761 % 2**32) * every // 2**32  # whole seconds in [0, every)
    k = math.floor((now.timestamp() - phase) / every) + 1
    return datetime.fromtimestamp(phase + k * every, tz=UTC)


def set_schedule(pks: Iterable[int], every: int | None) -> int:
    """Refresh the given rows every ``every`` seconds (None: off), effective at once; returns how many.

    Under the rows' locks (id order, as :func:`queue_refresh`); the next time is
    computed now (:func:`first_refresh_at`), or cleared. Queues no chart itself.
    """
    if every is not None and every < 60:
        raise ValueError("a schedule is at least one minute")
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            Function.objects.select_for_update().filter(pk__in=set(pks)).order_by("pk").values_list("pk", flat=True)
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE functions_function AS f SET refresh_every = %s, next_refresh_at = v.next"
                " FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, next) WHERE f.id = v.id",
                [every, rows, [first_refresh_at(pk, every, now) for pk in rows]],
            )
    return len(rows)


@dataclass(frozen=True)
class Dispatched:
    queued: int  # rows whose scheduled refresh was queued
    skipped: int  # rows due while their previous run was still queued: not sent again, next time moved on
    pages: int  # transactions the tick took


# One page of a tick, one statement: lock due rows no other dispatcher holds (SKIP LOCKED),
# move each row's next time on by whole periods from where it was, to the first one after
# now (no drift; the ticks missed while beat was down coalesce into this one), and say
# which rows still have a queued run (those are not sent again).
_DUE_PAGE = """
UPDATE functions_function AS f
SET next_refresh_at = f.next_refresh_at
    + (floor(extract(epoch FROM %(now)s - f.next_refresh_at) / f.refresh_every) + 1)::float8
    * make_interval(secs => f.refresh_every)
FROM (
    SELECT id FROM functions_function
    WHERE next_refresh_at <= %(now)s
    ORDER BY next_refresh_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) AS due
WHERE f.id = due.id
RETURNING f.id, EXISTS (SELECT 1 FROM functions_run AS r WHERE r.function_id = f.id AND r.state = 'queued')
"""


def dispatch_due_schedules(now: datetime | None = None) -> Dispatched:
    """One tick of the schedule (beat sends it every ``PIPELINE_SCHEDULE_EVERY``): queue the due rows.

    Page after page of at most ``SCHEDULE_PAGE`` rows, each page one transaction:
    the due rows are locked with SKIP LOCKED (a second dispatcher at the same
    moment takes other rows, or none), their next time moves on from their
    schedule, and the rows without a queued run go through :func:`queue_refresh`,
    the path of the Refresh action (sent once the page commits; a broker that is
    down leaves the runs in the outbox for the sweep, never failed). A row whose
    previous run is still queued is not sent again.
    """
    now = now or _clock()
    queued = skipped = pages = 0
    while True:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(_DUE_PAGE, {"now": now, "limit": settings.SCHEDULE_PAGE})
                claimed = cursor.fetchall()
            to_queue = [pk for pk, in_flight in claimed if not in_flight]
            queue_refresh(to_queue, batch=False)
        pages += 1
        queued += len(to_queue)
        skipped += len(claimed) - len(to_queue)
        if len(claimed) < settings.SCHEDULE_PAGE:
            break
    if queued or skipped:
        log.info("schedule: queued %d rows, %d still in flight not sent again (%d pages)", queued, skipped, pages)
    return Dispatched(queued, skipped, pages)
