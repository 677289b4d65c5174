"""The pipeline's public entry point: everything the admin (service 1) uses of the pipeline.

The admin imports this module only, never the workers' internals (their HTTP
client, chart builder, settings); ``tests/test_architecture.py`` holds it to that.

- **Sending runs**: :func:`new_job` builds the message of one run, :func:`start_refresh`
  sends one chain per job (publisher confirms) and returns the runs the broker took,
  :class:`SendFailed` says which it took before it failed; :func:`queued_messages`
  counts the work waiting in the stage queues.
- **The live view** (Redis, never needed to decide): :func:`row_statuses`,
  the live stage names, :func:`note`.
- **The persist stage's frame** (the admin implements persist and the sweep, the
  pipeline routes and retries them): :data:`app`, :class:`StageTask`,
  :data:`PERSIST_TASK`, :data:`SWEEP_TASK`, :data:`SCHEDULE_TASK` (the schedule's tick, every
  :data:`SCHEDULE_EVERY` seconds), :func:`enter_stage`, :func:`left_stage`,
  :func:`with_trace`, :func:`trace_entry`.
- **Asking datagen** through the pipeline's connection pool: :func:`check_function`
  (the add and change forms), :func:`ask_datagen_points` (the interactive chart, CSV),
  :func:`json_or_none`, :func:`retry_after` (the seconds of a busy answer's
  ``Retry-After``), :class:`TransientFailure`.
- **Failure codes** (the words are the admin's): :data:`FAILURE_CODES` (the pipeline's own),
  :data:`DATAGEN_CODES` (datagen's, passed on as they are).
- **Metrics** (:mod:`pipeline.metrics`): :func:`stage_ended` and :func:`run_finished` (the
  persist stage's and PostgreSQL's outcomes), :func:`add_scrape_collector` (figures read at
  each scrape, e.g. from PostgreSQL).
- **Numbers as the charts write them**: :func:`format_number`, :func:`readable_duration`.
- **Logs** (:mod:`pipeline.logs`): :func:`admin_logging` (the admin's ``LOGGING``) and
  :func:`configure_logging` (its ``LOGGING_CONFIG``): one JSON line per event.
- **Settings**: :class:`EnvSettings` and :func:`load` (the one rule of every service's
  settings), :func:`split_list`, and :data:`STATUS_TTL` (how long the live view keeps
  a run, so how long the list shows a batch).
"""

from __future__ import annotations

from typing import Any

from pipeline import charts, clients, settings
from pipeline.canvas import SendFailed, queued_messages, start_refresh
from pipeline.celery import PERSIST_TASK, SCHEDULE_TASK, SWEEP_TASK, StageTask, app
from pipeline.charts import format_number, readable_duration
from pipeline.clients import ask_datagen_points, json_or_none, retry_after
from pipeline.errors import CODES as FAILURE_CODES
from pipeline.errors import DATAGEN_CODES, TransientFailure
from pipeline.jobs import Job, new_job, trace_entry, with_trace
from pipeline.logs import admin_logging
from pipeline.logs import configure as configure_logging
from pipeline.metrics import add_scrape_collector, run_finished, stage_ended
from pipeline.settings import EnvSettings, load, split_list
from pipeline.status import PERSISTING, POINTS, QUEUED, RENDERING, note, row_statuses
from pipeline.tasks import enter_stage, left_stage

STATUS_TTL = settings.STATUS_TTL
SCHEDULE_EVERY = settings.SCHEDULE_EVERY


def check_function(expression: str, interval: float, dt: float) -> dict[str, list[dict[str, Any]]]:
    """datagen's problems with a function and its sampling, by field (empty: none), each as datagen
    answered it (``code``, ``params``, ``message``), for the chart the pipeline draws. Raises
    :class:`TransientFailure` when datagen cannot be asked."""
    return clients.check_function(expression, interval, dt, charts.plot_width(settings.CHART_WIDTH))


__all__ = [
    "PERSISTING",
    "PERSIST_TASK",
    "POINTS",
    "QUEUED",
    "RENDERING",
    "SCHEDULE_EVERY",
    "SCHEDULE_TASK",
    "STATUS_TTL",
    "SWEEP_TASK",
    "DATAGEN_CODES",
    "FAILURE_CODES",
    "EnvSettings",
    "Job",
    "SendFailed",
    "StageTask",
    "TransientFailure",
    "add_scrape_collector",
    "admin_logging",
    "app",
    "ask_datagen_points",
    "check_function",
    "configure_logging",
    "enter_stage",
    "format_number",
    "json_or_none",
    "left_stage",
    "load",
    "new_job",
    "note",
    "queued_messages",
    "readable_duration",
    "retry_after",
    "row_statuses",
    "run_finished",
    "split_list",
    "stage_ended",
    "start_refresh",
    "trace_entry",
    "with_trace",
]
