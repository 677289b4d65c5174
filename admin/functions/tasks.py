"""The persist stage: the last link of every chain, run by the persist worker."""

import time
from typing import Any

from django.db import InterfaceError, OperationalError

from functions import services
from pipeline import settings, status
from pipeline.celery import PERSIST_TASK, SWEEP_TASK, app


@app.task(
    name=PERSIST_TASK,
    bind=True,
    # PostgreSQL away for a moment: try again rather than drop the result.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=settings.RETRY_BACKOFF,
    retry_backoff_max=settings.RETRY_BACKOFF_MAX,
    max_retries=settings.MAX_RETRIES,
)
def persist_chart(self, job: dict[str, Any]) -> dict[str, Any]:
    """Stage 3: store the chart or the error text, and the processing date."""
    status.set_state(job["function_id"], job["run_id"], status.PERSISTING)
    delivery = self.request.delivery_info or {}
    trace = dict(job.get("trace") or {})
    trace["persist"] = {
        "queue": delivery.get("routing_key"),
        "worker": self.request.hostname,
        "started": time.time(),
        "attempts": self.request.retries + 1,
    }
    stored = services.store_result(dict(job, trace=trace))
    return {"function_id": job["function_id"], "run_id": job["run_id"], "stored": stored}


@app.task(name=SWEEP_TASK)
def fail_stalled_runs() -> int:
    """Periodic: runs whose work was lost end as failed with the reason."""
    return services.fail_stalled_runs()
