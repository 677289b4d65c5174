"""The floor of "the rest" (issue 24): three Celery tasks that do nothing, chained as the stages are.

The same broker, result backend and Celery settings as the pipeline (pipeline.celery: JSON,
publisher confirms, acks_late, prefetch 1, only the last stage's result in Redis), the same prefork workers, one
per queue, and messages of the same size (the points of a small chart, then its PNG), but
no work: no datagen, no export server, no PostgreSQL, no status or metrics. What three
such tasks cost per chart is what the pipeline's stages cost before they do anything.

    celery -A tests.celery_floor worker -Q floor-points   # started by tests.bench_export_cost
"""

from __future__ import annotations

import base64
import os

from celery import Celery
from kombu import Exchange, Queue

from pipeline.celery import app as pipeline_app

QUEUES = ("floor-points", "floor-render", "floor-persist")
# As pipeline.celery configures its app, but for the queues and routes.
SAME = (
    "broker_url",
    "result_backend",
    "broker_connection_retry_on_startup",
    "broker_transport_options",
    "task_serializer",
    "result_serializer",
    "accept_content",
    "result_expires",
    "task_acks_late",
    "task_reject_on_worker_lost",
    "worker_prefetch_multiplier",
)

floor = Celery("floor")
floor.conf.update({key: pipeline_app.conf[key] for key in SAME})
_exchange = Exchange("floor", type="direct", durable=True)
floor.conf.update(
    task_queues=[Queue(name, _exchange, routing_key=name, durable=True) for name in QUEUES],
)

# A chart's PNG is 20-40 kB (base64 in the job): random bytes of that size.
PNG = base64.b64encode(os.urandom(24_000)).decode()
POINTS = [[1_764_900_000 + 3600 * i, 0.5 * i] for i in range(25)]


@floor.task(name="floor.points", ignore_result=True)
def points(job: dict) -> dict:
    return {**job, "points": POINTS}


@floor.task(name="floor.render", ignore_result=True)
def render(job: dict) -> dict:
    return {**{k: v for k, v in job.items() if k != "points"}, "png": PNG}


@floor.task(name="floor.persist")
def persist(job: dict) -> dict:
    return {"function_id": job["function_id"], "state": "done"}


def stages(job: dict) -> list:
    """The three signatures of one chain, each with its queue: the worker sends the next one with
    the options it carries (its own app's routes do not reach a chain's continuation)."""
    return [
        task.s(*args).set(queue=queue, routing_key=queue)
        for task, args, queue in zip((points, render, persist), ((job,), (), ()), QUEUES, strict=True)
    ]
