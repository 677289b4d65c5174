"""The one contract between the stages: the message that travels down a chain.

The admin builds it with :func:`new_job`; each stage returns it with its own
output added. It carries only what a later stage reads:

| field         | written by | read by                 |
|---------------|------------|-------------------------|
| version       | new_job    | every stage (refuses another version) |
| function_id, run_id, batch_id, queued_at | new_job | every stage (status, superseded check) |
| send          | new_job    | the task ids (a re-sent run's messages are told apart) |
| expression, interval, dt | new_job | points, render |
| points        | points     | render                  |
| end           | points     | persist (processing date) |
| png           | render     | persist                 |
| error         | any stage  | later stages (skip), persist (stores it) |
| cause         | a failed stage | persist (the error's code: stored, and the metrics' cause of a failed run) |
| error_params  | a failed stage | persist (the error's parameters, stored: the admin words the error from them) |
| superseded    | any stage  | later stages (skip), persist (counts it) |
| trace         | every stage| persist (stores it)     |
"""

from __future__ import annotations

import time
from typing import Any, NotRequired, TypedDict

VERSION = 3


class TraceEntry(TypedDict, total=False):
    queue: str | None
    worker: str | None
    started: float
    seconds: float
    attempts: int
    redelivered: bool
    exporter: str
    failed_exporters: list[str]


class Job(TypedDict):
    version: int
    function_id: int
    run_id: str
    batch_id: str | None
    queued_at: float
    send: int
    expression: str
    interval: float
    dt: float
    trace: dict[str, TraceEntry]
    points: NotRequired[list[list[float]]]
    end: NotRequired[float]
    png: NotRequired[str]
    error: NotRequired[str]
    cause: NotRequired[str]
    error_params: NotRequired[dict[str, Any]]
    superseded: NotRequired[bool]


def new_job(
    function_id: int,
    run_id: str,
    expression: str,
    interval: float,
    dt: float,
    batch_id: str | None = None,
    queued_at: float | None = None,
    send: int = 1,
) -> Job:
    """The message that starts one chain (``queued_at``: when the run was queued, unix seconds;
    ``send``: 1 for the run's first send, more when the sweep sends it again)."""
    return Job(
        version=VERSION,
        function_id=function_id,
        run_id=run_id,
        batch_id=batch_id,
        queued_at=time.time() if queued_at is None else queued_at,
        send=send,
        expression=expression,
        interval=interval,
        dt=dt,
        trace={},
    )


def trace_entry(request: Any, started_at: float, seconds: float | None = None, **extra: Any) -> TraceEntry:
    """One stage's line of the trace, from the Celery request that ran it."""
    delivery = request.delivery_info or {}
    entry = TraceEntry(
        queue=delivery.get("routing_key"),
        worker=request.hostname,
        started=started_at,
        attempts=request.retries + 1,
    )
    if seconds is not None:
        entry["seconds"] = round(seconds, 4)
    if delivery.get("redelivered"):  # the broker gave this message again (a worker or the broker went away)
        entry["redelivered"] = True
    entry.update(extra)  # type: ignore[typeddict-item]
    return entry


def with_trace(job: Job, stage: str, entry: TraceEntry) -> Job:
    return Job(**{**job, "trace": {**(job.get("trace") or {}), stage: entry}})  # type: ignore[typeddict-item]


def ready_since(job: Job, stage: str) -> float | None:
    """When ``stage``'s message of ``job`` could start (unix seconds): the run queued (points,
    on its first send) or the previous stage ended; None when the trace does not say."""
    if stage == "points":
        return job["queued_at"] if job.get("send", 1) == 1 else None
    previous = job.get("trace", {}).get("render" if stage == "persist" else "points")
    if stage == "persist" and not previous:
        previous = job.get("trace", {}).get("points")
    if previous and "started" in previous and "seconds" in previous:
        return previous["started"] + previous["seconds"]
    return None
