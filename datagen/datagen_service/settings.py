"""Settings of the datagen service: the only settings module.

Every option is an environment variable, declared once in :class:`DatagenEnv` below
with its type, default and meaning (pydantic-settings reads and checks them; the
README's table lists the same). One rule for all of them: an unset, empty or
blank variable means the default; any other value (surrounding whitespace
stripped) must parse as the declared type, or the service refuses to start with
an error that names the variable.

=================================  =====================  ==============================================
Variable                           Default                Meaning
=================================  =====================  ==============================================
``POSTGRES_HOST``                  ``127.0.0.1``          PostgreSQL host
``POSTGRES_PORT``                  ``5432``               PostgreSQL port
``POSTGRES_DB``                    ``function_dashboard`` database name (datagen creates no tables)
``DATAGEN_POSTGRES_USER``          ``datagen``            database role (no table privileges)
``DATAGEN_POSTGRES_PASSWORD``      (empty)                its password
``DATAGEN_STATEMENT_TIMEOUT_MS``   ``10000``              statement_timeout of every query, in ms
``DATAGEN_CONN_MAX_AGE``           ``60``                 seconds a DB connection is reused
``DATAGEN_PG_JIT``                 ``off``                PostgreSQL JIT for datagen's statements
``DATAGEN_MAX_SAMPLES``            ``10000000``           most samples one series may have
``DATAGEN_MAX_RAW_POINTS``         ``1000000``            most points returned without decimation
``DATAGEN_MAX_WIDTH``              ``10000``              largest ``width`` (pixels) accepted
``DATAGEN_MAX_COLUMN_SAMPLES``     ``100000``             most samples in one M4 pixel column
``DATAGEN_MAX_EXPRESSION_LENGTH``  ``1000``               longest expression, in characters
``DATAGEN_MAX_DEPTH``              ``64``                 deepest nesting of an expression
``DATAGEN_HEAVY_SAMPLES``          ``1000000``            more samples than this: a heavy series
``DATAGEN_HEAVY_RAW_POINTS``       ``100000``             more raw (undecimated) points: a heavy series
``DATAGEN_HEAVY_SLOTS``            ``1``                  heavy series computed at once (all processes)
``DATAGEN_RETRY_AFTER``            ``2``                  Retry-After seconds of a 503 busy answer
``DATAGEN_SECRET_KEY``             (a dev-only key)       Django SECRET_KEY (datagen signs nothing)
``DATAGEN_ALLOWED_HOSTS``          ``*``                  comma-separated Django ALLOWED_HOSTS
``DATAGEN_LOG_LEVEL``              ``INFO``               level of the service's log (stderr)
``DATAGEN_LOG_FORMAT``             ``json``               json (one object per line) or console (text)
``DATAGEN_TEST_DB``                ``test_datagen``       database that the test suite creates and drops
``METRICS_PORT``                   ``0``                  Prometheus ``/metrics`` port of the service (0: off)
``METRICS_HOST``                   ``127.0.0.1``          the address ``/metrics`` listens on
=================================  =====================  ==============================================

The table is checked against :class:`DatagenEnv` by ``tests/test_settings.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, SettingsConfigDict

from series.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent


class DatagenEnv(BaseSettings):
    """The environment of the datagen service: variable = field name in upper case."""

    model_config = SettingsConfigDict(env_ignore_empty=True, case_sensitive=False, str_strip_whitespace=True)

    postgres_host: str = Field("127.0.0.1", description="PostgreSQL host")
    postgres_port: int = Field(5432, description="PostgreSQL port")
    postgres_db: str = Field("function_dashboard", description="database name (datagen creates no tables)")
    datagen_postgres_user: str = Field(
        "datagen", description="database role (no table privileges; created by the admin's bootstrap)"
    )
    datagen_postgres_password: SecretStr = Field("", description="its password")
    datagen_statement_timeout_ms: int = Field(10000, ge=1, description="statement_timeout of every query, in ms")
    datagen_conn_max_age: int = Field(60, ge=0, description="seconds a database connection is reused")
    datagen_pg_jit: bool = Field(False, description="PostgreSQL JIT for datagen's statements")
    datagen_max_samples: int = Field(10_000_000, ge=1, description="most samples one series may have")
    datagen_max_raw_points: int = Field(1_000_000, ge=1, description="most points returned without decimation")
    datagen_max_width: int = Field(10_000, ge=1, description="largest width (pixels) accepted")
    datagen_max_column_samples: int = Field(
        100_000, ge=1, description="most samples in one M4 pixel column: width >= samples / this"
    )
    datagen_max_expression_length: int = Field(1000, ge=1, description="longest expression, in characters")
    datagen_max_depth: int = Field(64, ge=1, description="deepest nesting of an expression")
    datagen_heavy_samples: int = Field(
        1_000_000, ge=0, description="a series with more samples than this is heavy (needs a heavy slot)"
    )
    datagen_heavy_raw_points: int = Field(
        100_000,
        ge=0,
        description="a raw (undecimated) series with more points than this is heavy too (the CSV download)",
    )
    datagen_heavy_slots: int = Field(
        1, ge=1, description="heavy series computed at once, by all datagen processes on the database together"
    )
    datagen_retry_after: int = Field(2, ge=1, description="Retry-After seconds of a 503 busy answer")
    datagen_secret_key: SecretStr = Field(
        "datagen-dev-only-insecure-key-change-me", description="Django SECRET_KEY (datagen signs nothing)"
    )
    datagen_allowed_hosts: str = Field("*", description="comma-separated Django ALLOWED_HOSTS")
    datagen_log_level: str = Field("INFO", description="level of the service's log (stderr)")
    datagen_log_format: Literal["json", "console"] = Field(
        "json", description="json: one JSON object per line (the default); console: aligned text for a terminal"
    )
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics port of the service (0: off)")
    metrics_host: str = Field("127.0.0.1", description="the address /metrics listens on")
    datagen_test_db: str = Field("test_datagen", description="database that the test suite creates and drops")

    @field_validator("*", mode="before")
    @classmethod
    def _blank_means_default(cls, value: Any) -> Any:
        # "" is already ignored (env_ignore_empty); "  " too. (Defaults are validated as
        # well, and the empty default password must stay "".)
        if isinstance(value, str) and value and not value.strip():
            raise PydanticUseDefault()
        return value


# Lower case: not a setting (Django reads upper-case names only), so no settings dump
# shows it; its secrets are SecretStr besides (their repr is masked).
try:
    env = DatagenEnv()
except ValidationError as exc:  # name the variable, not the field
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"datagen environment: {exc}") from None

SECRET_KEY = env.datagen_secret_key.get_secret_value()
# Never on: datagen answers JSON only, and Django's debug page must never be an answer.
DEBUG = False
ALLOWED_HOSTS = [h.strip() for h in env.datagen_allowed_hosts.split(",") if h.strip()]

INSTALLED_APPS = [
    "django.contrib.staticfiles",  # Swagger UI's files (drf-spectacular-sidecar), served by WhiteNoise
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "series",
    "csp",
]

MIDDLEWARE = [
    # First: one log line per request, whatever answers it, with the run id of its X-Run-Id header.
    "series.logs.RequestLogMiddleware",
    # Then: times every request (the gunicorn master serves /metrics: deploy/gunicorn.conf.py).
    "series.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.common.CommonMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "datagen_service.urls"
WSGI_APPLICATION = "datagen_service.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

# Static files come straight from the installed apps (no collectstatic step):
# WhiteNoise indexes them through Django's finders once at start-up.
STATIC_URL = "/api/v1/static/"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = False

DATAGEN_STATEMENT_TIMEOUT_MS = env.datagen_statement_timeout_ms
DATAGEN_PG_JIT = env.datagen_pg_jit

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": env.postgres_host,
        "PORT": env.postgres_port,
        "NAME": env.postgres_db,
        "USER": env.datagen_postgres_user,
        "PASSWORD": env.datagen_postgres_password.get_secret_value(),
        "CONN_MAX_AGE": env.datagen_conn_max_age,
        "CONN_HEALTH_CHECKS": True,
        # pytest-django's database; its own name, so the other services' test runs
        # (which use test_<POSTGRES_DB>) can run at the same time.
        "TEST": {"NAME": env.datagen_test_db},
        "OPTIONS": {
            # Session settings sent at connect time, so every statement is bounded
            # and each series is still a single statement.
            "options": (
                f"-c statement_timeout={DATAGEN_STATEMENT_TIMEOUT_MS}"
                f" -c jit={'on' if DATAGEN_PG_JIT else 'off'}"
                " -c extra_float_digits=1"
            ),
            "application_name": "datagen",
        },
    }
}

DATAGEN_MAX_SAMPLES = env.datagen_max_samples
DATAGEN_MAX_RAW_POINTS = env.datagen_max_raw_points
DATAGEN_MAX_WIDTH = env.datagen_max_width
DATAGEN_MAX_COLUMN_SAMPLES = env.datagen_max_column_samples
DATAGEN_MAX_EXPRESSION_LENGTH = env.datagen_max_expression_length
DATAGEN_MAX_DEPTH = env.datagen_max_depth
DATAGEN_HEAVY_SAMPLES = env.datagen_heavy_samples
DATAGEN_HEAVY_RAW_POINTS = env.datagen_heavy_raw_points
DATAGEN_HEAVY_SLOTS = env.datagen_heavy_slots
DATAGEN_RETRY_AFTER = env.datagen_retry_after

# Requests carry one expression and a few numbers; refuse big bodies early.
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": ["series.parsers.JSONParser"],
    # Accept NaN/Infinity/1e999 in the body so that the error names the field
    # (interval, dt, end) instead of rejecting the whole body.
    "STRICT_JSON": False,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "NON_FIELD_ERRORS_KEY": "body",
    "EXCEPTION_HANDLER": "series.errors.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Function Dashboard datagen",
    "DESCRIPTION": (
        "Generates the points of y = f(t) from one PostgreSQL statement. t is unix time in "
        "seconds (double precision); interval is in days, dt in hours. With a target width "
        "and more than 4 x width samples the series is M4-decimated."
    ),
    "VERSION": "1.0.0",
    # The description also states the limits across fields, with this instance's numbers (series/schema.py).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "series.schema.describe_limits"],
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the drf-spectacular-sidecar package, served locally: nothing from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    # No "valid" badge fetched from validator.swagger.io: Swagger UI talks to datagen only.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Content-Security-Policy (django-csp) of every answer, the docs page (Swagger UI) included:
# its files come from datagen itself (drf-spectacular-sidecar), its start script too (the
# split view's ?script, not inline), and it fetches only the schema from datagen.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# One JSON line per event (series/logs.py; README, "Operating it", "Logs").
LOGGING_CONFIG = "series.logs.configure"
LOGGING = logging_config(env.datagen_log_level, env.datagen_log_format)
