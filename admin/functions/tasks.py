"""The persist stage: the last link of every chain, run by the persist worker."""

from typing import Any

from functions import services
from pipeline import status
from pipeline.celery import PERSIST_TASK, app


@app.task(name=PERSIST_TASK, bind=True)
def persist_chart(self, job: dict[str, Any]) -> dict[str, Any]:
    """Stage 3: store the chart or the error text, and the processing date."""
    delivery = self.request.delivery_info or {}
    trace = dict(job.get("trace") or {})
    trace["persist"] = {"queue": delivery.get("routing_key"), "worker": self.request.hostname}
    job = dict(job, trace=trace)
    status.set_state(job["function_id"], job["run_id"], status.PERSISTING)
    stored = services.store_result(job)
    return {"function_id": job["function_id"], "run_id": job["run_id"], "stored": stored}
