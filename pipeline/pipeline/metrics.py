"""The pipeline's Prometheus metrics, and the scrape endpoint of every worker.

A worker (points, render, persist) serves ``/metrics`` on ``METRICS_PORT`` (0: off)
from its main process; its pool processes write their samples to files under
``PROMETHEUS_MULTIPROC_DIR`` (``deploy/run`` empties it at every start), which the
endpoint sums (``prometheus_client``'s multiprocess mode). The README's "Operating
it" section lists every metric and alert.

Stage metrics (``stage`` = points, render, persist):

- ``pipeline_stage_wait_seconds``: from the moment the stage's message could start
  (the run queued, the previous stage ended) until it started; first starts only.
- ``pipeline_stage_run_seconds``: the stage's work, observed once per outcome.
- ``pipeline_stage_outcomes_total{outcome, cause}``: ``done``, ``failed`` (``cause``: the
  failure's code, datagen's or the pipeline's own: ``math_error``, ``no_answer``,
  ``unreachable``, ``export_server``, ...; :data:`pipeline.errors.KNOWN_CODES`),
  ``retried``, ``superseded``, ``parked``.
- ``pipeline_runs_finished_total{outcome, cause}``: what PostgreSQL recorded for a run
  (done, failed, superseded), counted by the persist stage once per run.
- ``pipeline_export_requests_in_flight{exporter}``: renders waiting on an export server.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from celery import signals
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from pipeline.errors import KNOWN_CODES

log = logging.getLogger(__name__)

WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

STAGE_WAIT = Histogram(
    "pipeline_stage_wait_seconds",
    "Time a stage's message waited before its first start",
    ["stage"],
    buckets=WAIT_BUCKETS,
)
STAGE_RUN = Histogram("pipeline_stage_run_seconds", "Time a stage worked, per outcome", ["stage"], buckets=RUN_BUCKETS)
STAGE_OUTCOMES = Counter(
    "pipeline_stage_outcomes",
    "Outcomes of the stages, by stage, outcome and cause class",
    ["stage", "outcome", "cause"],
)
RUNS_FINISHED = Counter(
    "pipeline_runs_finished", "Runs PostgreSQL recorded as finished, by outcome and cause class", ["outcome", "cause"]
)
EXPORTS_IN_FLIGHT = Gauge(
    "pipeline_export_requests_in_flight",
    "Render requests waiting on an export server",
    ["exporter"],
    multiprocess_mode="livesum",
)

# Scrape-time collectors of the process serving /metrics (the persist worker adds the
# PostgreSQL figures: runs in flight, the oldest queued run, schedules behind).
_scrape_collectors: list[Collector] = []


def cause_label(cause: object) -> str:
    """A bounded label value: a failure code (:data:`pipeline.errors.KNOWN_CODES`: datagen's and
    the pipeline's own) as it is, anything else ``other``, never free text."""
    text = str(cause or "")
    return text if text in KNOWN_CODES else ("" if not text else "other")


def add_scrape_collector(collector: Collector) -> None:
    """Have ``collector`` answer with every scrape of this process's endpoint."""
    _scrape_collectors.append(collector)


class _ScrapeCollectors(Collector):
    """The collectors added with :func:`add_scrape_collector`, whenever they were added."""

    def collect(self) -> Iterator[Metric]:
        for collector in list(_scrape_collectors):
            yield from collector.collect()


def registry_for_scrape() -> CollectorRegistry:
    """The registry a scrape reads: every process's samples (multiprocess mode) or this one's,
    and the scrape-time collectors."""
    from prometheus_client import REGISTRY, multiprocess

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = REGISTRY
    else:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    registry.register(_ScrapeCollectors())
    return registry


def serve(port: int, host: str) -> None:
    """Serve ``/metrics`` on ``host:port`` from a thread of this process (0: nothing)."""
    if not port:
        return
    start_http_server(port, addr=host, registry=registry_for_scrape())
    log.info("metrics on http://%s:%d/metrics", host, port)


@signals.worker_ready.connect
def _serve_worker_metrics(**_: object) -> None:
    from pipeline import settings

    serve(settings.METRICS_PORT, settings.METRICS_HOST)


@signals.worker_process_shutdown.connect
def _pool_process_gone(pid: int | None = None, **_: object) -> None:
    """A pool process ended: its live gauges stop counting (its counters stay summed)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


def stage_started(stage: str, job: Mapping[str, Any], request: Any, now: float) -> None:
    """A stage began its work: its message's wait, counted on first starts only (a retry or
    a redelivery waited for its own reasons)."""
    from pipeline.jobs import ready_since

    if request.retries or (request.delivery_info or {}).get("redelivered"):
        return
    since = ready_since(job, stage)  # type: ignore[arg-type]
    if since is not None:
        STAGE_WAIT.labels(stage).observe(max(0.0, now - since))


def stage_ended(stage: str, outcome: str, cause: object = "", seconds: float | None = None) -> None:
    """A stage's start ended with ``outcome`` (done, failed, retried, superseded, parked)."""
    STAGE_OUTCOMES.labels(stage, outcome, cause_label(cause)).inc()
    if seconds is not None:
        STAGE_RUN.labels(stage).observe(seconds)


def run_finished(outcome: str, cause: object = "", count: int = 1) -> None:
    """PostgreSQL recorded ``count`` runs as finished with ``outcome`` (done, failed, superseded)."""
    if count:
        RUNS_FINISHED.labels(outcome, cause_label(cause)).inc(count)
