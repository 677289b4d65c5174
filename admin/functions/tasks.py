"""The persist stage (the last link of every chain), the sweep and the schedule's tick, run by the persist worker."""

import logging
import time
from typing import Any

from django.db import InterfaceError, OperationalError

from functions import services
from pipeline.api import (
    PERSIST_TASK,
    SCHEDULE_TASK,
    SWEEP_TASK,
    StageTask,
    app,
    enter_stage,
    left_stage,
    note,
    run_finished,
    stage_ended,
    trace_entry,
    with_trace,
)

log = logging.getLogger(__name__)


class PersistGaveUp(Exception):
    """PostgreSQL stayed unreachable for the whole retry window (the sweep sends the run again later)."""


@app.task(
    name=PERSIST_TASK,
    bind=True,
    base=StageTask,
    # PostgreSQL away for a moment: the pipeline's one retry policy, rather than drop the result.
    autoretry_for=(OperationalError, InterfaceError),
)
def persist_chart(self: StageTask, job: dict[str, Any]) -> dict[str, Any]:
    """Stage 3: store the chart or the error text, and the processing date (if the run is still queued)."""
    run, function_id = job["run_id"], job["function_id"]
    try:
        # Any outcome is stored, an earlier stage's error too: persist always enters.
        job = enter_stage(self, "persist", job)  # type: ignore[arg-type]
        job = with_trace(job, "persist", trace_entry(self.request, time.time()))  # type: ignore[arg-type]
        started = time.monotonic()
        try:
            stored = services.store_result(job)
        except (OperationalError, InterfaceError) as exc:
            cause = f'Stage "persist": PostgreSQL is unreachable ({exc})'.strip()
            stage_ended("persist", "retried", "database_unreachable", time.monotonic() - started)
            if self.may_retry():
                note(function_id, run, cause)
                log.warning("run %s: %s, retrying", run, cause)
                raise
            note(function_id, run, f"{cause}; gave up after {self.failing_for():.0f} s")
            raise PersistGaveUp(f"run {run}: {cause}; gave up after {self.failing_for():.0f} s") from exc
        stage_ended("persist", "superseded" if job.get("superseded") else "done", "", time.monotonic() - started)
        if stored:
            run_finished("failed" if job.get("error") else "done", job.get("cause"))
    finally:
        left_stage(self)
    return {"function_id": function_id, "run_id": run, "stored": stored}


@app.task(name=SWEEP_TASK, ignore_result=True)
def sweep_runs() -> dict[str, int]:
    """Periodic (deploy/run beat): send unsent runs, send quiet ones again, fail the ones lost for
    good, and delete the runs older than RUN_HISTORY_SECONDS."""
    swept = services.sweep_runs()
    pruned = services.prune_history()
    return {"sent": swept.sent, "resent": swept.resent, "failed": swept.failed, "pruned": pruned}


@app.task(name=SCHEDULE_TASK, ignore_result=True)
def dispatch_schedules() -> dict[str, int]:
    """Periodic (deploy/run beat, every PIPELINE_SCHEDULE_EVERY): queue the rows whose scheduled refresh is due."""
    dispatched = services.dispatch_due_schedules()
    return {"queued": dispatched.queued, "skipped": dispatched.skipped, "pages": dispatched.pages}
