"""Build and send the refresh of functions: one chain per row, all sent at once.

This is the pipeline's public entry point for sending::

    job = jobs.new_job(function_id, run_id, expression, interval, dt, batch_id, queued_at)
    sent = start_refresh([job, ...])   # the run ids the broker took; SendFailed says which

Every message is persistent, on a durable queue, and published with publisher
confirms (``confirm_publish``, pipeline.celery): a run counts as sent only once
RabbitMQ has written it, so a broker killed a moment later still has it.
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
    """The broker did not take (all of) the chains; ``sent`` holds the run ids it did take."""

    def __init__(self, message: str, sent: list[str]) -> None:
        super().__init__(message)
        self.sent = sent


def task_id(job: Job, stage: str) -> str:
    """``<run id>.<stage>`` (``<run id>.s<n>.<stage>`` for the n-th send of a run): every log
    line of a run names it, and the messages of a re-sent run are told apart."""
    send = job.get("send", 1)
    return f"{job['run_id']}.{stage}" if send == 1 else f"{job['run_id']}.s{send}.{stage}"


def refresh_chain(job: Job) -> Signature:
    """points -> render -> persist for one row; each task is routed to its own queue.

    No stage keeps a result: the Redis result backend is never involved in
    sending (or running) a chain.
    """
    # What logs and Flower show as the task's arguments. Without it Celery would
    # build a repr of the whole job (points, PNG) for every message it sends.
    shown = {"argsrepr": f"(<job of run {job['run_id']}, row {job['function_id']}>,)", "kwargsrepr": "{}"}
    return chain(
        app.signature(POINTS_TASK, args=(job,), task_id=task_id(job, "points"), ignore_result=True, **shown),
        app.signature(RENDER_TASK, task_id=task_id(job, "render"), ignore_result=True, **shown),
        app.signature(PERSIST_TASK, task_id=task_id(job, "persist"), ignore_result=True, **shown),
    )


def start_refresh(jobs: list[Job]) -> list[str]:
    """Show the rows queued in Redis and send their chains (they run in parallel).

    Returns the run ids the broker confirmed. Redis being down does not stop the
    send; the broker being down raises :class:`SendFailed` within seconds, with
    the runs it took before (those will run).
    """
    if not jobs:
        return []
    status.start_runs((job["function_id"], job["run_id"], job["queued_at"]) for job in jobs)
    sent: list[str] = []
    try:
        if len(jobs) > settings.FANOUT_OVER:
            # A big batch is one message: the points worker sends its chains
            # (a few ms each), so the user's request answers at once.
            first = jobs[0]
            app.signature(SEND_TASK, args=(jobs,), task_id=f"{first['run_id']}.send", ignore_result=True).apply_async()
            return [job["run_id"] for job in jobs]
        send_chains(jobs, sent)
    except Exception as exc:  # kombu's OperationalError, socket errors, a publish not confirmed ...
        raise SendFailed(f"the message broker ({_broker()}) did not take the work: {exc}", sent) from exc
    return sent


def send_chains(jobs: list[Job], sent: list[str] | None = None) -> None:
    """Send one chain per job over one producer connection, appending each confirmed run to ``sent``.

    Not a Celery group: a group subscribes to every result in the result
    backend as it sends, which would make sending depend on Redis.
    """
    with app.producer_or_acquire() as producer:
        for job in jobs:
            refresh_chain(job).apply_async(producer=producer)
            if sent is not None:
                sent.append(job["run_id"])


def _broker() -> str:
    return app.connection_for_write().as_uri()


def queued_messages() -> int | None:
    """Messages ready in the three stage queues (None: the broker cannot be asked).

    Only ready messages: those a worker holds (running, prefetched, waiting for a
    retry's countdown) are not counted; the sweep allows for them by waiting
    longer than any of them lasts before it sends a run again.
    """
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
