"""Every setting of the pipeline, in one place: env var, default, meaning.

Every option is an environment variable, declared once in :class:`PipelineEnv`
below with its type, default and meaning (pydantic-settings reads and checks
them; :class:`EnvSettings` holds the one rule, the admin's settings use it too).
The rule: an unset, empty or blank variable means the default; any other value
(surrounding whitespace stripped) must parse as the declared type, or the
process refuses to start with an error that names the variable.
PIPELINE_RETRY_BACKOFF and PIPELINE_RETRY_BACKOFF_MAX are whole seconds, at least 1:
Celery int()s both and takes a backoff of 0 as none at all (every retry would wait
180 s), so a fraction or 0 is refused rather than silently changed.

| env var                       | default                              | meaning |
|-------------------------------|--------------------------------------|---------|
| CELERY_BROKER_URL             | amqp://guest:guest@127.0.0.1:5672//  | RabbitMQ broker |
| CELERY_RESULT_BACKEND         | redis://127.0.0.1:6379/0             | Redis result backend |
| PIPELINE_STATUS_REDIS_URL     | (= CELERY_RESULT_BACKEND)            | Redis for the live stage of rows |
| DATAGEN_URL                   | http://127.0.0.1:8001                | datagen REST service |
| EXPORTER_URLS                 | http://127.0.0.1:7801                | export server instances, comma separated |
| CHART_WIDTH                   | 800                                  | chart width in pixels (PNG and M4 target) |
| CHART_HEIGHT                  | 400                                  | chart height in pixels |
| PIPELINE_HTTP_TIMEOUT         | 30                                   | seconds per HTTP call to datagen/exporter |
| PIPELINE_RETRY_WINDOW         | 180                                  | s a stage retries after its first failure |
| PIPELINE_MAX_RETRIES          | 100                                  | hard cap of retries per stage |
| PIPELINE_RETRY_BACKOFF        | 1                                    | delay factor, whole s >= 1 (full jitter) |
| PIPELINE_RETRY_BACKOFF_MAX    | 30                                   | cap of a delay/Retry-After, whole s >= 1 |
| PIPELINE_MAX_DELIVERIES       | 3                                    | deaths under one message before it is parked |
| PIPELINE_REDIS_TIMEOUT        | 1                                    | seconds per status call to Redis |
| PIPELINE_BROKER_TIMEOUT       | 3                                    | s to connect to the broker |
| PIPELINE_FANOUT_OVER          | 50                                   | bigger batches are sent by the points worker |
| PIPELINE_SWEEP_EVERY          | 60                                   | seconds between two sweeps |
| PIPELINE_SCHEDULE_EVERY       | 10                                   | seconds between two schedule ticks |
| PIPELINE_STATUS_TTL           | 86400                                | s a live stage lives in Redis |
| PIPELINE_TLS_CA_FILE          | (empty: the system's CAs)            | CA verifying amqps:// and rediss:// servers |
| METRICS_PORT                  | 0                                    | a worker's Prometheus /metrics port (0: off) |
| METRICS_HOST                  | 127.0.0.1                            | the address /metrics listens on |
| LOG_FORMAT                    | json                                 | json (one object per line) or console (text) |
| LOG_LEVEL                     | INFO                                 | the admin's log level (gunicorn, Django) |
| LOG_SERVICE                   | (empty)                              | `service` of each line (deploy/run sets it) |

TLS (README, Adding a worker host): a broker URL ``amqps://...`` and a Redis URL
``rediss://...`` are connected to over TLS with the server's certificate verified, always:
signed by PIPELINE_TLS_CA_FILE's CA (or the system's) and naming the URL's host
(:func:`broker_tls`, :func:`redis_tls`; pipeline.celery and pipeline.status use them). A
``rediss://`` URL that asks for less (``ssl_cert_reqs=none`` or ``optional``) is refused.

The table is checked against :class:`PipelineEnv` by ``tests/test_settings.py``.
The Celery processes (workers, beat) log at their ``--loglevel`` (deploy/run: CELERY_LOG_LEVEL);
the log's lines and fields are described in :mod:`pipeline.logs`.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, SettingsConfigDict


class EnvSettings(BaseSettings):
    """The one rule of every setting: variable = field name in upper case; unset, empty or
    blank means the default; otherwise the stripped value must parse as the field's type."""

    model_config = SettingsConfigDict(env_ignore_empty=True, case_sensitive=False, str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_means_default(cls, value: Any) -> Any:
        # "" is already ignored (env_ignore_empty); "  " too. (Defaults are validated as
        # well, and an empty default must stay "".) Stripped before any type: " on " is on.
        if not isinstance(value, str):
            return value
        if value and not value.strip():
            raise PydanticUseDefault()
        return value.strip()


class SettingsError(Exception):
    """A variable has a value its setting cannot take: the process does not start."""


def load(env_class: type[EnvSettings], service: str, error: type[Exception] = SettingsError) -> Any:
    """Read ``env_class`` from the environment, or raise ``error`` naming the bad variable."""
    try:
        return env_class()
    except ValidationError as exc:  # the field name is the variable's name in lower case
        raise error(f"{service} environment: {exc}") from None


def split_list(value: str) -> list[str]:
    """A comma-separated setting as its non-empty items."""
    return [item.strip() for item in value.split(",") if item.strip()]


class PipelineEnv(EnvSettings):
    """The environment of the pipeline (points, render and persist workers, beat, the admin's sends)."""

    celery_broker_url: str = Field("amqp://guest:guest@127.0.0.1:5672//", description="RabbitMQ broker")
    celery_result_backend: str = Field("redis://127.0.0.1:6379/0", description="Redis result backend")
    pipeline_status_redis_url: str = Field(
        "", description="Redis for the live stage of rows; empty = CELERY_RESULT_BACKEND"
    )
    datagen_url: str = Field("http://127.0.0.1:8001", description="datagen REST service")
    exporter_urls: str = Field("http://127.0.0.1:7801", description="export server instances, comma separated")
    chart_width: int = Field(800, ge=1, description="chart width in pixels (PNG and M4 target)")
    chart_height: int = Field(400, ge=1, description="chart height in pixels")
    pipeline_http_timeout: float = Field(30.0, gt=0, description="seconds per HTTP call to datagen/exporter")
    pipeline_retry_window: float = Field(180.0, ge=0, description="seconds a stage retries after its first failure")
    pipeline_max_retries: int = Field(100, ge=0, description="hard cap of retries per stage")
    pipeline_retry_backoff: int = Field(1, description="retry delay factor, whole seconds >= 1 (full jitter)")
    pipeline_retry_backoff_max: int = Field(
        30, description="cap of one retry delay (and of a Retry-After honoured), whole seconds >= 1"
    )
    pipeline_max_deliveries: int = Field(
        3, ge=1, description="starts of one message that ended with its process dying, before it is parked"
    )
    pipeline_redis_timeout: float = Field(1.0, gt=0, description="seconds per status call to Redis")
    pipeline_broker_timeout: float = Field(3.0, gt=0, description="seconds to connect to the broker")
    pipeline_fanout_over: int = Field(50, ge=0, description="bigger batches are sent by the points worker")
    pipeline_sweep_every: float = Field(
        60.0, gt=0, description="seconds between two sweeps (unsent runs sent, quiet ones sent again)"
    )
    pipeline_schedule_every: float = Field(
        10.0, gt=0, description="seconds between two schedule ticks (rows due for their scheduled refresh queued)"
    )
    pipeline_status_ttl: int = Field(
        86400, ge=1, description="seconds a live stage lives in Redis; how long the list shows a batch"
    )

    pipeline_tls_ca_file: str = Field(
        "",
        description="CA certificate file (PEM) that verifies the TLS certificates of an amqps:// broker and a "
        "rediss:// Redis; empty = the system's CAs",
    )

    metrics_port: int = Field(0, ge=0, le=65535, description="a worker's Prometheus /metrics port (0: off)")
    metrics_host: str = Field("127.0.0.1", description="the address /metrics listens on")

    log_format: Literal["json", "console"] = Field(
        "json", description="json: one JSON object per line (the default); console: aligned text for a terminal"
    )
    log_level: str = Field(
        "INFO", description="level of the admin's log (gunicorn, Django, the persist worker's Django records)"
    )
    log_service: str = Field("", description="the `service` field of every line; deploy/run sets its process name")

    @field_validator("log_level")
    @classmethod
    def _a_logging_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"LOG_LEVEL = {value!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value.upper()

    @field_validator("celery_result_backend", "pipeline_status_redis_url")
    @classmethod
    def _rediss_verifies(cls, value: str, info: ValidationInfo) -> str:
        """A ``rediss://`` URL is verified: one that turns verification down is refused."""
        if value.startswith("rediss://"):
            asked = parse_qs(urlsplit(value).query).get("ssl_cert_reqs", ["required"])
            if any(item.lower() not in {"required", "cert_required"} for item in asked):
                raise ValueError(
                    f"{(info.field_name or '').upper()}: a rediss:// URL must verify the server "
                    f"(ssl_cert_reqs=required, the default here), not ssl_cert_reqs={asked[0]}"
                )
        return value

    @field_validator("pipeline_retry_backoff", "pipeline_retry_backoff_max", mode="before")
    @classmethod
    def _whole_seconds_celery_keeps(cls, value: Any, info: ValidationInfo) -> Any:
        """Celery's autoretry (celery/app/autoretry.py) int()s both, ``int(max(1.0, retry_backoff))``
        and ``int(retry_backoff_max)``, and a falsy ``retry_backoff`` means no backoff at all
        (every retry waits ``default_retry_delay``, 180 s); a cap of 0 makes every retry
        immediate. So only a whole number of seconds, at least 1, means what it says."""
        name = (info.field_name or "").upper()
        if isinstance(value, str):
            if not value.strip():
                return value  # blank: the default (the rule of EnvSettings)
            try:
                number = int(value.strip(), 10)
            except ValueError:
                raise ValueError(
                    f"{name} = {value!r} is not a whole number of seconds: Celery truncates the retry "
                    f"backoff to whole seconds, so a fraction would not mean what it says"
                ) from None
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raise ValueError(f"{name} = {value!r} is not a whole number of seconds")
        if number < 1:
            effect = (
                "0 turns Celery's backoff off (every retry would wait its default 180 s)"
                if info.field_name == "pipeline_retry_backoff"
                else "a cap below 1 s makes every retry immediate"
            )
            raise ValueError(f"{name} = {value!r} must be at least 1 (whole seconds): {effect}")
        return number


ENV: PipelineEnv = load(PipelineEnv, "pipeline")

BROKER_URL = ENV.celery_broker_url
RESULT_BACKEND = ENV.celery_result_backend
STATUS_REDIS_URL = ENV.pipeline_status_redis_url or RESULT_BACKEND
DATAGEN_URL = ENV.datagen_url.rstrip("/")
EXPORTER_URLS = [url.rstrip("/") for url in split_list(ENV.exporter_urls)]
CHART_WIDTH = ENV.chart_width
CHART_HEIGHT = ENV.chart_height
HTTP_TIMEOUT = ENV.pipeline_http_timeout
RETRY_WINDOW = ENV.pipeline_retry_window
MAX_RETRIES = ENV.pipeline_max_retries
RETRY_BACKOFF = ENV.pipeline_retry_backoff
RETRY_BACKOFF_MAX = ENV.pipeline_retry_backoff_max
MAX_DELIVERIES = ENV.pipeline_max_deliveries
REDIS_TIMEOUT = ENV.pipeline_redis_timeout
BROKER_TIMEOUT = ENV.pipeline_broker_timeout
STATUS_TTL = ENV.pipeline_status_ttl
FANOUT_OVER = ENV.pipeline_fanout_over
SWEEP_EVERY = ENV.pipeline_sweep_every
SCHEDULE_EVERY = ENV.pipeline_schedule_every
TLS_CA_FILE = ENV.pipeline_tls_ca_file or None
METRICS_PORT = ENV.metrics_port
METRICS_HOST = ENV.metrics_host
LOG_FORMAT = ENV.log_format
LOG_LEVEL = ENV.log_level
LOG_SERVICE = ENV.log_service

# The three stages and their queues. Routing is declared once, in pipeline.celery.
POINTS_QUEUE = "points"
RENDER_QUEUE = "render"
PERSIST_QUEUE = "persist"


def broker_tls(url: str = BROKER_URL) -> dict[str, Any] | None:
    """Celery's ``broker_use_ssl`` for ``url``: for ``amqps://``, the broker's certificate is
    required, verified against PIPELINE_TLS_CA_FILE (or the system's CAs) and must name the
    URL's host (kombu fills ``server_hostname`` in); None for a plaintext ``amqp://``."""
    if urlsplit(url).scheme != "amqps":
        return None
    return {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": TLS_CA_FILE, "server_hostname": None}


def redis_tls(url: str) -> dict[str, Any]:
    """redis-py's TLS options for ``url`` (Celery's ``redis_backend_use_ssl``, the status
    client's): for ``rediss://``, the certificate is required, verified against
    PIPELINE_TLS_CA_FILE (or the system's CAs) and must name the URL's host; empty for
    a plaintext ``redis://``."""
    if urlsplit(url).scheme != "rediss":
        return {}
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": TLS_CA_FILE, "ssl_check_hostname": True}
