"""Reads: what the admin shows."""

from __future__ import annotations

import contextlib
import select
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, Min, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from functions.models import OUTCOME_CHANNEL, Batch, Function, Run
from pipeline import api


@dataclass(frozen=True)
class Chart:
    png: bytes
    etag: str
    last_modified: datetime | None


def recent_runs(pk: int, limit: int = 5) -> list[Run]:
    """The newest runs of a row, newest first (its history, as PostgreSQL decided it)."""
    return list(
        Run.objects.filter(function_id=pk)
        .order_by("-queued_at")
        .only("id", "state", "queued_at", "sent_at", "sends", "finished_at", "expression", "dt", "interval")[:limit]
    )


def function_chart(pk: int) -> Chart | None:
    """The stored PNG of a function with its cache validators, or None."""
    row = Function.objects.filter(pk=pk, chart__isnull=False).values("chart", "result_run", "processed_at").first()
    if row is None:
        return None
    return Chart(bytes(row["chart"]), str(row["result_run"]), row["processed_at"])


def chart_etag(pk: int) -> str | None:
    """The ETag of a function's chart without loading the image."""
    run = Function.objects.filter(pk=pk, chart__isnull=False).values_list("result_run", flat=True)
    run_id = run.first()
    return f'"{run_id}"' if run_id else None


# The live stage of a queued run that the broker has not taken yet (it waits in the outbox).
UNSENT = "unsent"


def live_stages(functions: list[Function]) -> dict[int, str]:
    """The stage each in-progress row has reached: as the stages wrote it to Redis, or
    ``unsent`` while its run waits for the broker (PostgreSQL's outbox)."""
    pending = [f for f in functions if f.in_progress]
    if not pending:
        return {}
    unsent = set(
        Run.objects.filter(id__in=[f.run_id for f in pending], sent_at__isnull=True).values_list(
            "function_id", flat=True
        )
    )
    rows = api.row_statuses(f.pk for f in pending if f.pk not in unsent)
    live = {f.pk: rows[f.pk].stage for f in pending if f.pk in rows and rows[f.pk].run == str(f.run_id)}
    return {**live, **dict.fromkeys(unsent, UNSENT)}


def rows_with_live_stage(ids: list[int]) -> list[Function]:
    """The rows ``ids`` as the list shows them (no PNG loaded), each with ``live_stage`` set."""
    rows = list(with_queued_since(Function.objects.filter(pk__in=ids).defer("chart", "trace")))
    set_live_stages(rows)
    return rows


def set_live_stages(rows: list[Function]) -> None:
    """Give each row its ``live_stage`` (from Redis; "queued" when Redis knows nothing newer)."""
    live = live_stages(rows)
    for row in rows:
        row.live_stage = live.get(row.pk, api.QUEUED)


@dataclass(frozen=True)
class BatchProgress:
    id: str
    started_at: datetime
    total: int
    done: int
    failed: int
    superseded: int

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.superseded

    @property
    def running(self) -> bool:
        return self.finished < self.total


def recent_batches(limit: int = 5) -> list[BatchProgress]:
    """The newest batches of the last ``PIPELINE_STATUS_TTL`` seconds, newest first, with their
    progress counted in PostgreSQL (right whatever happened to Redis)."""
    since = timezone.now() - timedelta(seconds=api.STATUS_TTL)
    counted = {state: Count("runs", filter=Q(runs__state=state)) for state in Run.State.values}
    batches = (
        Batch.objects.filter(started_at__gte=since)
        .order_by("-started_at")
        .annotate(total=Count("runs"), **counted)[:limit]
    )
    return [
        BatchProgress(
            id=str(batch.id),
            started_at=batch.started_at,
            total=batch.total,
            done=batch.done,
            failed=batch.failed,
            superseded=batch.superseded,
        )
        for batch in batches
    ]


# Waiting Adds hold a request thread each: never more than ADD_WAIT_CONCURRENCY at once
# per process, so that Adds piling up (e.g. export servers down) cannot starve the list.
_waiting = threading.BoundedSemaphore(settings.ADD_WAIT_CONCURRENCY)


def wait_for_outcome(pk: int, run_id: object, timeout: float, poll: float = 0.5) -> bool:
    """Wait up to ``timeout`` seconds until run ``run_id`` of row ``pk`` is stored
    (at once False when ADD_WAIT_CONCURRENCY requests of this process wait already).

    It wakes when PostgreSQL announces the row's outcome (the commit that stores it
    notifies :data:`OUTCOME_CHANNEL`), so the Add answers as soon as its chart is
    stored; ``poll`` only bounds a wait whose announcement never comes (a row
    stored by a persist worker of an older release)."""
    if not _waiting.acquire(blocking=False):
        return False
    try:
        return _wait(pk, run_id, timeout, poll)
    finally:
        _waiting.release()


def _wait(pk: int, run_id: object, timeout: float, poll: float) -> bool:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        cursor.execute(f"LISTEN {OUTCOME_CHANNEL}")  # before the first look: no announcement is missed
    try:
        while True:
            if Function.objects.filter(pk=pk, result_run=run_id).exists():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            _announced(str(pk), min(left, poll))
    finally:
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute(f"UNLISTEN {OUTCOME_CHANNEL}")
        if connection.connection is not None:
            connection.connection.notifies.clear()


def _announced(payload: str, seconds: float) -> None:
    """Wait up to ``seconds`` for PostgreSQL to announce the outcome of row ``payload``."""
    raw = connection.connection  # psycopg2's, listening (autocommit: LISTEN took effect at once)
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([raw], [], [], left)[0]:
            return
        raw.poll()
        announced = any(notify.payload == payload for notify in raw.notifies)
        raw.notifies.clear()  # other rows' outcomes: not ours, keep waiting
        if announced:
            return


def with_queued_since(rows: QuerySet[Function]) -> QuerySet[Function]:
    """Each row with ``queued_since``: when its queued run was queued (None: none), so the list
    can say how long a scheduled refresh has been waiting (one indexed lookup per row)."""
    queued = Run.objects.filter(function=OuterRef("pk"), state=Run.State.QUEUED).values("queued_at")[:1]
    return rows.annotate(queued_since=Subquery(queued))


@dataclass(frozen=True)
class Backlog:
    queued: int  # runs queued (sent or not)
    unsent: int  # of those, not yet confirmed by the broker
    oldest_queued_at: datetime | None
    schedules_due: int  # scheduled rows whose time has come and gone
    oldest_due_at: datetime | None


def backlog() -> Backlog:
    """The work PostgreSQL holds that is not done yet (the metrics read it at each scrape)."""
    runs = Run.objects.filter(state=Run.State.QUEUED).aggregate(
        queued=Count("pk"), unsent=Count("pk", filter=Q(sent_at__isnull=True)), oldest=Min("queued_at")
    )
    due = Function.objects.filter(next_refresh_at__lte=timezone.now()).aggregate(
        due=Count("pk"), oldest=Min("next_refresh_at")
    )
    return Backlog(runs["queued"], runs["unsent"], runs["oldest"], due["due"], due["oldest"])
