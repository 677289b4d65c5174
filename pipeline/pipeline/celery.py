"""The one Celery app of the project; configuration and routing live here.

The points and render stages are implemented in :mod:`pipeline.tasks`. The
persist stage writes to the admin's database, so it is implemented by the
admin (``functions.tasks``) under the task name :data:`PERSIST_TASK`; the
persist worker runs with the admin's Django settings and this same app.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from pipeline import settings

POINTS_TASK = "pipeline.generate_points"
RENDER_TASK = "pipeline.render_chart"
PERSIST_TASK = "pipeline.persist_chart"
# Implemented by the admin too: marks runs that stopped making progress as failed.
SWEEP_TASK = "pipeline.fail_stalled_runs"

app = Celery("pipeline", include=["pipeline.tasks"])

_exchange = Exchange("pipeline", type="direct", durable=True)

app.conf.update(
    broker_url=settings.BROKER_URL,
    result_backend=settings.RESULT_BACKEND,
    broker_connection_retry_on_startup=True,
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
        RENDER_TASK: {"queue": settings.RENDER_QUEUE, "routing_key": settings.RENDER_QUEUE},
        PERSIST_TASK: {"queue": settings.PERSIST_QUEUE, "routing_key": settings.PERSIST_QUEUE},
        SWEEP_TASK: {"queue": settings.PERSIST_QUEUE, "routing_key": settings.PERSIST_QUEUE},
    },
    # The persist worker runs the scheduler (celery worker -B): one sweep a minute.
    beat_schedule={
        "fail-stalled-runs": {"task": SWEEP_TASK, "schedule": settings.SWEEP_EVERY},
    },
    # A task is acknowledged only once it has finished; a worker that dies
    # mid-task gives the message back to the broker (every stage is idempotent).
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    # No task events or STARTED states by default: each costs a message per task.
    # Flower switches the workers' events on while it runs (its --enable_events).
    # The stages write the live status the admin shows to Redis themselves.
)
