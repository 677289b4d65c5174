"""The log of the pipeline's and the admin's processes: one JSON line per event (structlog).

Every record ends up as one line on stderr, structlog's own events and the standard
library's records alike (Django's, Celery's, gunicorn's, this project's ``logging``
calls): :func:`logging_config` routes the root logger through structlog's
``ProcessorFormatter``, so they all pass the same processors (:data:`SHARED`).
``LOG_FORMAT`` (pipeline.settings) chooses ``json`` (the default: one object per line)
or ``console`` (aligned, coloured text for a terminal).

Every line of a stage carries the run it works for: :func:`bind_task` (Celery's
``task_prerun``) binds ``run_id``, ``row_id`` (the function's id), ``batch_id``,
``stage`` and ``task_id`` with structlog's contextvars, and :func:`unbind_task`
(``task_postrun``) clears them, so a pool process never lends one run's ids to the
next. The same ``run_id`` travels to datagen and the export server in the
:data:`RUN_ID_HEADER` request header (pipeline.clients), and their lines carry it too.

Fields of every line: ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``service``
(deploy/run's process name), ``event`` (the message); a stage's lines add the five above.
"""

from __future__ import annotations

import copy
import logging
import logging.config
import re
from collections.abc import Mapping
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

# The request header that carries a run's id to datagen and the export server.
RUN_ID_HEADER = "X-Run-Id"
# A run id as a header may carry it: the receivers drop anything else (never logged verbatim).
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9-]{1,64}")
# The keys a stage binds for the lines it writes (cleared when the task ends).
TASK_KEYS = ("run_id", "row_id", "batch_id", "stage", "task_id")
FORMATS = ("json", "console")


def valid_run_id(value: object) -> str | None:
    """``value`` when it is a run id a log may carry (at most 64 of ``[A-Za-z0-9-]``), else None."""
    return value if isinstance(value, str) and RUN_ID_PATTERN.fullmatch(value) else None


def add_service(service: str) -> Processor:
    """A processor naming the process (``service``) on every line."""

    def processor(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        if service:
            event.setdefault("service", service)
        return event

    return processor


def drop_color_message(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Some libraries pass a coloured copy of their message as an extra: not for a JSON line."""
    event.pop("color_message", None)
    return event


# Run for every line, structlog's and the standard library's (its ``foreign_pre_chain``).
SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.PositionalArgumentsFormatter(),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    drop_color_message,
]


def renderer(fmt: str) -> Processor:
    if fmt not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "console":
        return structlog.dev.ConsoleRenderer()
    return structlog.processors.JSONRenderer()


def formatter(fmt: str = "json", service: str = "") -> structlog.stdlib.ProcessorFormatter:
    """The formatter of the one handler (``logging.config`` builds it by this name: see :func:`logging_config`)."""
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta, add_service(service)]
    if fmt == "json":  # a traceback as one string field of the same line (the console prints it as text)
        final.append(structlog.processors.format_exc_info)
    final.append(renderer(fmt))
    return structlog.stdlib.ProcessorFormatter(foreign_pre_chain=SHARED, processors=final)


def logging_config(level: str, fmt: str, service: str = "", access_log: bool = True) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping: every record to stderr through :func:`formatter`.

    ``access_log``: gunicorn's access lines too (the admin's request lines; datagen writes
    its own, with the run id). gunicorn's loggers lose their own handlers and propagate.
    """
    renderer(fmt)  # refuse an unknown format here, naming the variable
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {"()": "pipeline.logs.formatter", "fmt": fmt, "service": service}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            "gunicorn.error": {"handlers": [], "propagate": True},
            "gunicorn.access": {"handlers": [], "propagate": True, "level": "INFO" if access_log else "WARNING"},
        },
    }


def configure(config: Mapping[str, Any]) -> None:
    """Apply a :func:`logging_config` mapping and set structlog up to log through it.

    Django calls it with ``LOGGING`` (``LOGGING_CONFIG``); the workers through Celery's
    ``setup_logging`` (pipeline.celery). A copy is applied: ``dictConfig`` consumes it.
    """
    logging.config.dictConfig(copy.deepcopy(dict(config)))
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def task_context(stage: str, task_id: str | None, args: Any) -> dict[str, Any]:
    """What a task's lines carry: its stage and id, and the run, row and batch of its job (if any)."""
    context: dict[str, Any] = {"stage": stage, "task_id": task_id}
    job = args[0] if isinstance(args, list | tuple) and args else None
    if isinstance(job, Mapping) and "run_id" in job:
        context.update(run_id=job.get("run_id"), row_id=job.get("function_id"), batch_id=job.get("batch_id"))
    return context


def bind_task(stage: str, task_id: str | None, args: Any) -> None:
    """Bind a task's :func:`task_context` for the lines it writes (Celery's ``task_prerun``)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**task_context(stage, task_id, args))


def unbind_task() -> None:
    """Forget the task's context (Celery's ``task_postrun``): the next task starts clean."""
    structlog.contextvars.clear_contextvars()


def admin_logging() -> dict[str, Any]:
    """The admin's ``LOGGING`` (its gunicorn master's too: deploy/gunicorn.conf.py), from its settings."""
    from pipeline import settings

    return logging_config(settings.LOG_LEVEL, settings.LOG_FORMAT, settings.LOG_SERVICE or "admin")
