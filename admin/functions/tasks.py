"""The persist stage (the last link of every chain) and the stalled-run sweep, run by the persist worker."""

import logging
import time
from typing import Any

from django.db import InterfaceError, OperationalError
from redis import RedisError

from functions import services
from pipeline import jobs, settings, status
from pipeline.celery import PERSIST_TASK, SWEEP_TASK, StageTask, app
from pipeline.errors import TransientFailure
from pipeline.tasks import delivery_key, park

log = logging.getLogger(__name__)


class PersistGaveUp(Exception):
    """PostgreSQL stayed unreachable for the whole retry window (the sweep fails the row later)."""


@app.task(
    name=PERSIST_TASK,
    bind=True,
    base=StageTask,
    # PostgreSQL (or Redis, for the batch's counter) away for a moment: the pipeline's
    # one retry policy, rather than drop the result.
    autoretry_for=(TransientFailure, OperationalError, InterfaceError, RedisError),
)
def persist_chart(self: StageTask, job: dict[str, Any]) -> dict[str, Any]:
    """Stage 3: store the chart or the error text, and the processing date."""
    run, function_id = job["run_id"], job["function_id"]
    if job.get("version") != jobs.VERSION:
        job = {**job, "error": job.get("error") or f"job version {job.get('version')!r} is not {jobs.VERSION}"}
    began = status.begin(
        function_id, run, job.get("queued_at", 0), job.get("batch_id"), status.LIVE_STAGE["persist"], delivery_key(self)
    )
    if began.superseded:
        job = {**job, "superseded": True}
    elif began.deliveries > settings.MAX_DELIVERIES and not job.get("error"):
        job = {**job, "error": f'Stage "persist" failed: {park(self, "persist", job, began.deliveries)}'}
    job = jobs.with_trace(job, "persist", jobs.trace_entry(self.request, time.time()))  # type: ignore[arg-type]
    try:
        stored = services.store_result(job)
    except (OperationalError, InterfaceError) as exc:
        cause = f'Stage "persist": PostgreSQL is unreachable ({exc})'.strip()
        if self.may_retry():
            status.note(function_id, run, cause)
            log.warning("run %s: %s, retrying", run, cause)
            raise
        status.note(function_id, run, f"{cause}; gave up after {self.failing_for():.0f} s")
        raise PersistGaveUp(f"run {run}: {cause}; gave up after {self.failing_for():.0f} s") from exc
    except RedisError as exc:  # the row is stored; only the batch's counter is missing
        if self.may_retry():
            log.warning("run %s: stored, but its batch could not count it (%s), retrying", run, exc)
            raise
        log.error("run %s: stored, but its batch could not count it: %s", run, exc)
        stored = True
    return {"function_id": function_id, "run_id": run, "stored": stored}


@app.task(name=SWEEP_TASK, ignore_result=True)
def fail_stalled_runs() -> int:
    """Periodic (deploy/run beat): runs whose work was lost end as failed with the reason."""
    return services.fail_stalled_runs()
