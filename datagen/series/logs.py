"""datagen's log: one JSON line per event (structlog), and one line per request.

Every record, Django's, gunicorn's (deploy/gunicorn.conf.py) and the service's own,
passes structlog's processors and comes out as one JSON object on stderr
(``DATAGEN_LOG_FORMAT=console``: aligned text). :class:`RequestLogMiddleware` writes
the request line (method, path, status, duration) of every answer, errors included,
and binds the run a request works for, from its ``X-Run-Id`` header, to every line
written meanwhile. A header that is not a run id (at most 64 of ``[A-Za-z0-9-]``)
is ignored: what a client sends never reaches a line verbatim.

Fields of every line: ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``,
``service`` (``datagen``), ``event``; a request's lines add ``run_id`` when it has one.
"""

from __future__ import annotations

import copy
import logging
import logging.config
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from django.http import HttpRequest, HttpResponse
from structlog.typing import EventDict, Processor, WrappedLogger

RUN_ID_HEADER = "X-Run-Id"
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9-]{1,64}")
FORMATS = ("json", "console")
SERVICE = "datagen"
# The longest path a request line shows (a longer one is cut, marked with "...").
PATH_LIMIT = 200

log = structlog.get_logger("series.requests")


def valid_run_id(value: object) -> str | None:
    """``value`` when it is a run id a log may carry (at most 64 of ``[A-Za-z0-9-]``), else None."""
    return value if isinstance(value, str) and RUN_ID_PATTERN.fullmatch(value) else None


def add_service(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    event.setdefault("service", SERVICE)
    return event


SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.PositionalArgumentsFormatter(),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def formatter(fmt: str = "json") -> structlog.stdlib.ProcessorFormatter:
    """The one handler's formatter (``logging.config`` builds it by this name)."""
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta, add_service]
    if fmt == "console":
        final.append(structlog.dev.ConsoleRenderer())
    else:  # a traceback as one string field of the same line
        final += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    return structlog.stdlib.ProcessorFormatter(foreign_pre_chain=SHARED, processors=final)


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """``LOGGING``: every record to stderr through :func:`formatter`. gunicorn's loggers propagate
    to it; its access lines are left out (:class:`RequestLogMiddleware` writes each request's)."""
    if fmt not in FORMATS:
        raise ValueError(f"DATAGEN_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {"()": "series.logs.formatter", "fmt": fmt}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            "gunicorn.error": {"handlers": [], "propagate": True},
            "gunicorn.access": {"handlers": [], "propagate": True, "level": "WARNING"},
        },
    }


def configure(config: Mapping[str, Any]) -> None:
    """Django's ``LOGGING_CONFIG``: apply ``LOGGING`` (a copy: dictConfig consumes it) and set
    structlog up to log through it."""
    logging.config.dictConfig(copy.deepcopy(dict(config)))
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def datagen_logging() -> dict[str, Any]:
    """datagen's ``LOGGING`` (its gunicorn master's too: deploy/gunicorn.conf.py)."""
    from datagen_service import settings

    return logging_config(settings.env.datagen_log_level, settings.env.datagen_log_format)


def shown_path(path: str) -> str:
    return path if len(path) <= PATH_LIMIT else path[:PATH_LIMIT] + "..."


class RequestLogMiddleware:
    """One line per request, whatever answered it (a view, the exception handler's 4xx/5xx,
    Django's 404/500 handlers: each is a response by the time it comes back here), with
    the run id of its ``X-Run-Id`` header bound to every line written meanwhile. First in
    ``MIDDLEWARE``: it sees what every other middleware answers too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        structlog.contextvars.clear_contextvars()
        run_id = valid_run_id(request.headers.get(RUN_ID_HEADER))
        if run_id:
            structlog.contextvars.bind_contextvars(run_id=run_id)
        started = time.perf_counter()
        status = 500  # what Django answers when the rest raises
        try:
            response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            log.info(
                "request",
                method=request.method,
                path=shown_path(request.path),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()
