"""Every setting of the pipeline, in one place: env var, default, meaning.

| env var                       | default                              | meaning |
|-------------------------------|--------------------------------------|---------|
| CELERY_BROKER_URL             | amqp://guest:guest@127.0.0.1:5672//  | RabbitMQ broker |
| CELERY_RESULT_BACKEND         | redis://127.0.0.1:6379/0             | Redis result backend |
| PIPELINE_STATUS_REDIS_URL     | (= CELERY_RESULT_BACKEND)            | Redis for live row/batch status |
| DATAGEN_URL                   | http://127.0.0.1:8001                | datagen REST service |
| EXPORTER_URLS                 | http://127.0.0.1:7801                | export server instances, comma separated |
| CHART_WIDTH                   | 800                                  | chart width in pixels (PNG and M4 target) |
| CHART_HEIGHT                  | 400                                  | chart height in pixels |
| PIPELINE_HTTP_TIMEOUT         | 30                                   | seconds per HTTP call to datagen/exporter |
| PIPELINE_RETRY_WINDOW         | 180                                  | s a stage retries after its first failure |
| PIPELINE_MAX_RETRIES          | 100                                  | hard cap of retries per stage |
| PIPELINE_RETRY_BACKOFF        | 1                                    | retry delay factor, s (full jitter) |
| PIPELINE_RETRY_BACKOFF_MAX    | 30                                   | cap of one retry delay, seconds |
| PIPELINE_MAX_DELIVERIES       | 3                                    | deliveries before a message is parked |
| PIPELINE_REDIS_TIMEOUT        | 1                                    | seconds per status call to Redis |
| PIPELINE_BROKER_TIMEOUT       | 3                                    | s to connect to the broker |
| PIPELINE_FANOUT_OVER          | 50                                   | bigger batches are sent by the points worker |
| PIPELINE_SWEEP_EVERY          | 60                                   | seconds between two sweeps for stalled runs |
| PIPELINE_STATUS_TTL           | 86400                                | seconds a row/batch status lives in Redis |
"""

from __future__ import annotations

import os


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _float(name: str, default: float) -> float:
    return float(_env(name, str(default)))


BROKER_URL = _env("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
RESULT_BACKEND = _env("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/0")
STATUS_REDIS_URL = _env("PIPELINE_STATUS_REDIS_URL", RESULT_BACKEND)
DATAGEN_URL = _env("DATAGEN_URL", "http://127.0.0.1:8001").rstrip("/")
EXPORTER_URLS = [
    url.strip().rstrip("/") for url in _env("EXPORTER_URLS", "http://127.0.0.1:7801").split(",") if url.strip()
]
CHART_WIDTH = _int("CHART_WIDTH", 800)
CHART_HEIGHT = _int("CHART_HEIGHT", 400)
HTTP_TIMEOUT = _float("PIPELINE_HTTP_TIMEOUT", 30.0)
RETRY_WINDOW = _float("PIPELINE_RETRY_WINDOW", 180.0)
MAX_RETRIES = _int("PIPELINE_MAX_RETRIES", 100)
RETRY_BACKOFF = _float("PIPELINE_RETRY_BACKOFF", 1.0)
RETRY_BACKOFF_MAX = _float("PIPELINE_RETRY_BACKOFF_MAX", 30.0)
MAX_DELIVERIES = _int("PIPELINE_MAX_DELIVERIES", 3)
REDIS_TIMEOUT = _float("PIPELINE_REDIS_TIMEOUT", 1.0)
BROKER_TIMEOUT = _float("PIPELINE_BROKER_TIMEOUT", 3.0)
STATUS_TTL = _int("PIPELINE_STATUS_TTL", 86400)
FANOUT_OVER = _int("PIPELINE_FANOUT_OVER", 50)
SWEEP_EVERY = _float("PIPELINE_SWEEP_EVERY", 60.0)

# The three stages and their queues. Routing is declared once, in pipeline.celery.
POINTS_QUEUE = "points"
RENDER_QUEUE = "render"
PERSIST_QUEUE = "persist"
