"""Build and start the refresh of functions: one chain per row, all sent at once.

This is the pipeline's public entry point for the admin::

    job = jobs.new_job(function_id, run_id, expression, interval, dt, batch_id, queued_at)
    start_refresh([job, ...])   # raises SendFailed when the broker cannot take them
"""

from __future__ import annotations

import logging

from celery import chain
from celery.canvas import Signature

from pipeline import settings, status
from pipeline.celery import PERSIST_TASK, POINTS_TASK, RENDER_TASK, SEND_TASK, app
from pipeline.jobs import Job

log = logging.getLogger(__name__)


class SendFailed(Exception):
    """The broker did not take the chains (it is down or unreachable)."""


def refresh_chain(job: Job) -> Signature:
    """points -> render -> persist for one row; each task is routed to its own queue.

    The task ids are the run id plus the stage, so every log line of a run
    (Celery's own included) carries its run id. No stage keeps a result: the
    Redis result backend is never involved in sending (or running) a chain.
    """
    run = job["run_id"]
    # What logs and Flower show as the task's arguments. Without it Celery would
    # build a repr of the whole job (points, PNG) for every message it sends.
    shown = {"argsrepr": f"(<job of run {run}, row {job['function_id']}>,)", "kwargsrepr": "{}"}
    return chain(
        app.signature(POINTS_TASK, args=(job,), task_id=f"{run}.points", ignore_result=True, **shown),
        app.signature(RENDER_TASK, task_id=f"{run}.render", ignore_result=True, **shown),
        app.signature(PERSIST_TASK, task_id=f"{run}.persist", ignore_result=True, **shown),
    )


def start_refresh(jobs: list[Job]) -> None:
    """Mark the rows queued in Redis and send their chains (they run in parallel).

    The jobs of one call form one batch (they share ``batch_id``). Redis being
    down does not stop the send (the stages record the status); the broker
    being down raises :class:`SendFailed` within seconds.
    """
    if not jobs:
        return
    batch_id = jobs[0]["batch_id"]
    status.start_runs(((job["function_id"], job["run_id"], job["queued_at"]) for job in jobs), batch_id)
    try:
        if len(jobs) > settings.FANOUT_OVER:
            # A big batch is one message: the points worker sends its chains
            # (about 3 ms each), so the user's request answers at once.
            app.signature(SEND_TASK, args=(jobs,), task_id=f"{batch_id}.send", ignore_result=True).apply_async()
        else:
            send_chains(jobs)
    except Exception as exc:  # kombu's OperationalError, socket errors, ...
        raise SendFailed(f"the message broker ({_broker()}) did not take the work: {exc}") from exc


def send_chains(jobs: list[Job]) -> None:
    """Send one chain per job over one producer connection.

    Not a Celery group: a group subscribes to every result in the result
    backend as it sends, which would make sending depend on Redis.
    """
    with app.producer_or_acquire() as producer:
        for job in jobs:
            refresh_chain(job).apply_async(producer=producer)


def _broker() -> str:
    return app.connection_for_write().as_uri()


def queued_messages() -> int | None:
    """Messages waiting in the three stage queues (None: the broker cannot be asked)."""
    total = 0
    try:
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            for queue in (settings.POINTS_QUEUE, settings.RENDER_QUEUE, settings.PERSIST_QUEUE):
                total += channel.queue_declare(queue=queue, passive=True).message_count
    except Exception as exc:  # noqa: BLE001 - unreachable broker or missing queue: unknown
        log.warning("could not count the queued messages: %s", exc)
        return None
    return total
