"""Settings of the datagen service: the only settings module.

Every option comes from an environment variable with a default:

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
``DATAGEN_MAX_SAMPLES``            ``10000000``           most samples one series may have
``DATAGEN_MAX_RAW_POINTS``         ``1000000``            most points returned without decimation
``DATAGEN_MAX_WIDTH``              ``10000``              largest ``width`` (pixels) accepted
``DATAGEN_MAX_EXPRESSION_LENGTH``  ``1000``               longest expression, in characters
``DATAGEN_MAX_DEPTH``              ``64``                 deepest nesting of an expression
``DATAGEN_PG_JIT``                 ``off``                PostgreSQL JIT for datagen's statements
``DATAGEN_SECRET_KEY``             (a dev-only key)       Django SECRET_KEY (set it in production)
``DJANGO_DEBUG``                   ``0``                  ``1`` turns on Django's debug mode
``DATAGEN_ALLOWED_HOSTS``          ``*``                  comma-separated Django ALLOWED_HOSTS
``DATAGEN_LOG_LEVEL``              ``INFO``               level of the service's log (stderr)
``DATAGEN_TEST_DB``                ``test_datagen``       database that the test suite creates and drops
=================================  =====================  ==============================================
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    return raw in ("1", "true", "yes", "on")


SECRET_KEY = _env("DATAGEN_SECRET_KEY", "datagen-dev-only-insecure-key-change-me")
DEBUG = _env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [h.strip() for h in _env("DATAGEN_ALLOWED_HOSTS", "*").split(",") if h.strip()]

INSTALLED_APPS = [
    "rest_framework",
    "drf_spectacular",
    "series",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
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

DATAGEN_STATEMENT_TIMEOUT_MS = _env_int("DATAGEN_STATEMENT_TIMEOUT_MS", 10000)
DATAGEN_PG_JIT = _env("DATAGEN_PG_JIT", "off")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": _env("POSTGRES_HOST", "127.0.0.1"),
        "PORT": _env("POSTGRES_PORT", "5432"),
        "NAME": _env("POSTGRES_DB", "function_dashboard"),
        # datagen's own least-privilege role (created by the admin's bootstrap).
        "USER": _env("DATAGEN_POSTGRES_USER", "") or "datagen",
        "PASSWORD": _env("DATAGEN_POSTGRES_PASSWORD", ""),
        "CONN_MAX_AGE": _env_int("DATAGEN_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
        # pytest-django's database; its own name, so the other services' test runs
        # (which use test_<POSTGRES_DB>) can run at the same time.
        "TEST": {"NAME": _env("DATAGEN_TEST_DB", "test_datagen")},
        "OPTIONS": {
            # Session settings sent at connect time, so every statement is bounded
            # and each series is still a single statement.
            "options": (
                f"-c statement_timeout={DATAGEN_STATEMENT_TIMEOUT_MS}"
                f" -c jit={'on' if DATAGEN_PG_JIT.lower() in ('1', 'on', 'true') else 'off'}"
                " -c extra_float_digits=1"
            ),
            "application_name": "datagen",
        },
    }
}

DATAGEN_MAX_SAMPLES = _env_int("DATAGEN_MAX_SAMPLES", 10_000_000)
DATAGEN_MAX_RAW_POINTS = _env_int("DATAGEN_MAX_RAW_POINTS", 1_000_000)
DATAGEN_MAX_WIDTH = _env_int("DATAGEN_MAX_WIDTH", 10_000)
DATAGEN_MAX_EXPRESSION_LENGTH = _env_int("DATAGEN_MAX_EXPRESSION_LENGTH", 1000)
DATAGEN_MAX_DEPTH = _env_int("DATAGEN_MAX_DEPTH", 64)

# Requests carry one expression and a few numbers; refuse big bodies early.
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # Accept NaN/Infinity/1e999 in the body so that the error names the field
    # (interval, dt, end) instead of rejecting the whole body.
    "STRICT_JSON": False,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
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
    "SERVE_INCLUDE_SCHEMA": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": _env("DATAGEN_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
