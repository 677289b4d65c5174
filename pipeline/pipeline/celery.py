"""The one Celery app of the project; configuration and routing live here.

The points and render stages are implemented in :mod:`pipeline.tasks`. The
persist stage writes to the admin's database, so it is implemented by the
admin (``functions.tasks``) under the task name :data:`PERSIST_TASK`; the
persist worker runs with the admin's Django settings and this same app.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from celery import Celery, Task, signals
from kombu import Exchange, Queue

from pipeline import logs, settings
from pipeline.errors import TransientFailure

POINTS_TASK = "pipeline.generate_points"
RENDER_TASK = "pipeline.render_chart"
PERSIST_TASK = "pipeline.persist_chart"
# Sends the chains of a big batch (see pipeline.canvas), run by the points worker.
SEND_TASK = "pipeline.send_chains"
# Implemented by the admin too: sends unsent runs, sends quiet ones again, fails lost ones.
SWEEP_TASK = "pipeline.sweep_runs"
# Implemented by the admin too: queues the rows whose scheduled refresh is due (one tick).
SCHEDULE_TASK = "pipeline.dispatch_schedules"

# Carried by a retried message: when the stage first failed (unix seconds).
FIRST_FAILURE_HEADER = "fd_first_failure"
# Carried by a retried message: the servers (export server URLs) its earlier attempts
# failed at transiently; the retry goes to another one while one remains.
FAILED_TARGETS_HEADER = "fd_failed_targets"


class StageTask(Task):
    """The one retry policy of every stage, Celery's own: a transient failure is
    retried with exponential backoff and full jitter (``retry_backoff``,
    ``retry_jitter``), for at most ``PIPELINE_RETRY_WINDOW`` seconds after the
    stage's first failure (and ``PIPELINE_MAX_RETRIES`` retries, a hard cap).
    A stage asks :meth:`may_retry` before it gives up and passes the failure on.
    A service that says how long to wait (``Retry-After``, e.g. datagen's 503
    ``busy``) is waited for: that is the delay's floor, capped at
    ``PIPELINE_RETRY_BACKOFF_MAX``. The server a transient failure names
    (``TransientFailure.target``) travels with the retry (:data:`FAILED_TARGETS_HEADER`),
    so whichever process or worker takes the retry sends it elsewhere.
    """

    autoretry_for = (TransientFailure,)
    # Celery's "succeeded" log line shows the return value: a stage's is the job (points, a
    # PNG in base64), of which the line keeps this many characters, not Celery's 1024.
    resultrepr_maxsize = 200
    retry_backoff = settings.RETRY_BACKOFF
    retry_backoff_max = settings.RETRY_BACKOFF_MAX
    retry_jitter = True
    max_retries = settings.MAX_RETRIES

    def retry(self, *args, **kwargs):  # type: ignore[override]
        headers = dict(self.request.headers or {})
        headers.setdefault(FIRST_FAILURE_HEADER, time.time())
        target = getattr(kwargs.get("exc"), "target", None)
        failed = list(headers.get(FAILED_TARGETS_HEADER) or [])
        if target and target not in failed:
            headers[FAILED_TARGETS_HEADER] = [*failed, target]
        kwargs["headers"] = headers
        wait = getattr(kwargs.get("exc"), "retry_after", None)
        if wait is not None:
            kwargs["countdown"] = max(kwargs.get("countdown") or 0, min(wait, settings.RETRY_BACKOFF_MAX))
        return super().retry(*args, **kwargs)

    def failing_for(self) -> float:
        """Seconds since this stage first failed (0 on a first attempt)."""
        first = (self.request.headers or {}).get(FIRST_FAILURE_HEADER)
        return max(0.0, time.time() - float(first)) if first else 0.0

    def failed_targets(self) -> list[str]:
        """The servers this stage's earlier attempts failed at (empty on a first attempt)."""
        return [str(url) for url in (self.request.headers or {}).get(FAILED_TARGETS_HEADER) or []]

    def may_retry(self) -> bool:
        """Whether a transient failure now is still retried (within the window and the cap)."""
        return self.request.retries < self.max_retries and self.failing_for() < settings.RETRY_WINDOW


app = Celery("pipeline", include=["pipeline.tasks"])

_exchange = Exchange("pipeline", type="direct", durable=True)
# Poison messages (their worker died PIPELINE_MAX_DELIVERIES times) are copied here for
# people to look at; no worker consumes it, and a message expires with the row's status.
PARKED_QUEUE = Queue(
    "parked",
    _exchange,
    routing_key="parked",
    durable=True,
    queue_arguments={"x-message-ttl": int(settings.STATUS_TTL * 1000)},
)

app.conf.update(
    broker_url=settings.BROKER_URL,
    result_backend=settings.RESULT_BACKEND,
    # TLS (amqps://, rediss://): the server's certificate verified, always (pipeline.settings).
    broker_use_ssl=settings.broker_tls(settings.BROKER_URL),
    redis_backend_use_ssl=settings.redis_tls(settings.RESULT_BACKEND) or None,
    broker_connection_retry_on_startup=True,
    # Sending never hangs a request: a broker that does not answer fails the
    # send within seconds (the admin then marks the run failed with the reason).
    broker_connection_timeout=settings.BROKER_TIMEOUT,
    task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
    # Publisher confirms: a publish returns once RabbitMQ has taken the message (a persistent
    # message on a durable queue: written to disk), so a stage acknowledges its own message
    # (acks_late) only after the next stage's message is safe. A broker killed (SIGKILL) at
    # any moment then loses no run: what it had not confirmed was never acknowledged.
    broker_transport_options={"confirm_publish": True},
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    task_queues=[
        Queue(name, _exchange, routing_key=name, durable=True)
        for name in (settings.POINTS_QUEUE, settings.RENDER_QUEUE, settings.PERSIST_QUEUE)
    ],
    task_default_exchange=_exchange.name,
    task_default_exchange_type=_exchange.type,
    task_routes={
        POINTS_TASK: {"queue": settings.POINTS_QUEUE, "routing_key": settings.POINTS_QUEUE},
        SEND_TASK: {"queue": settings.POINTS_QUEUE, "routing_key": settings.POINTS_QUEUE},
        RENDER_TASK: {"queue": settings.RENDER_QUEUE, "routing_key": settings.RENDER_QUEUE},
        PERSIST_TASK: {"queue": settings.PERSIST_QUEUE, "routing_key": settings.PERSIST_QUEUE},
        SWEEP_TASK: {"queue": settings.PERSIST_QUEUE, "routing_key": settings.PERSIST_QUEUE},
        SCHEDULE_TASK: {"queue": settings.PERSIST_QUEUE, "routing_key": settings.PERSIST_QUEUE},
    },
    # The scheduler is its own process (deploy/run beat); the persist worker runs the sweep.
    # Beat does not know the sweep task (the admin implements it), so it sends it by name
    # with the entry's options; without ignore_result, send_task first subscribes to its
    # result in Redis (backend.on_task_call), which during a Redis outage retries for about
    # 20 s and logs CRITICAL "Retry limit exceeded", the sweep unsent (tests/test_beat.py).
    beat_schedule={
        "sweep-runs": {"task": SWEEP_TASK, "schedule": settings.SWEEP_EVERY, "options": {"ignore_result": True}},
        # The schedule's tick (rows due for their scheduled refresh are queued), the same way.
        # A tick that waited longer than a tick in the queue (the persist worker was away) is
        # dropped unrun: the next tick does the same work, so ticks never pile up.
        "dispatch-schedules": {
            "task": SCHEDULE_TASK,
            "schedule": settings.SCHEDULE_EVERY,
            "options": {"ignore_result": True, "expires": settings.SCHEDULE_EVERY},
        },
    },
    # Beat writes its schedule file after every task it sends, so with every sweep
    # (Celery's default: at most every 3 minutes); compose's beat healthcheck takes a
    # stale file for a stopped beat (deploy/compose/beat-check has the bound).
    beat_sync_every=1,
    # A task is acknowledged only once it has finished; a worker that dies
    # mid-task gives the message back to the broker (every stage is idempotent).
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    # No task events or STARTED states by default: each costs a message per task.
    # Flower switches the workers' events on while it runs (its --enable_events).
    # The stages write the live status the admin shows to Redis themselves.
)


# The stage (the log's ``stage`` field) of each task.
TASK_STAGES = {
    POINTS_TASK: "points",
    RENDER_TASK: "render",
    PERSIST_TASK: "persist",
    SEND_TASK: "send",
    SWEEP_TASK: "sweep",
    SCHEDULE_TASK: "schedule",
}


if os.path.basename(sys.argv[0]) == "celery":
    # Run as the celery command (deploy/run): lines as JSON from the start, before the worker's
    # set-up below (its warnings, e.g. Celery's SecurityWarning when run as root, come earlier).
    logs.configure(logs.logging_config(settings.LOG_LEVEL, settings.LOG_FORMAT, settings.LOG_SERVICE))


@signals.setup_logging.connect
def _one_json_line_per_event(loglevel: int | str | None = None, **_: Any) -> None:
    """Workers and beat: Celery's records, the tasks' and structlog's, through pipeline.logs (Celery's
    own set-up, which a receiver of this signal replaces, would print plain text)."""
    level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else (loglevel or settings.LOG_LEVEL)
    logs.configure(logs.logging_config(str(level), settings.LOG_FORMAT, settings.LOG_SERVICE))


@signals.task_prerun.connect
def _bind_the_run(task_id: str | None = None, task: Any = None, args: Any = None, **_: Any) -> None:
    """Every line a task writes carries its run, row, batch, stage and task id (cleared at its end)."""
    name = getattr(task, "name", "") or ""
    logs.bind_task(TASK_STAGES.get(name, name), task_id, args)


@signals.task_postrun.connect
def _unbind_the_run(**_: Any) -> None:
    logs.unbind_task()
