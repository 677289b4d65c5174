"""What PostgreSQL says of the pipeline's backlog, read at each scrape of the persist worker's
``/metrics`` (one query each; ``dashboard/celery.py`` registers it)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from django import db
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from functions import selectors


class BacklogCollector(Collector):
    """Runs in flight, the oldest queued run's age, scheduled rows behind their time."""

    def collect(self) -> Iterator[Metric]:
        try:
            backlog = selectors.backlog()
        except db.Error:
            backlog = None  # PostgreSQL away: the figures are missing, pipeline_backlog_up says so
        finally:
            db.connection.close()  # the scrape's own thread: never keep its connection
        yield GaugeMetricFamily(
            "pipeline_backlog_up", "Whether PostgreSQL answered this scrape's backlog query", value=int(bool(backlog))
        )
        if backlog is None:
            return
        now = time.time()
        yield GaugeMetricFamily("pipeline_runs_in_flight", "Runs queued in PostgreSQL", value=backlog.queued)
        yield GaugeMetricFamily(
            "pipeline_runs_unsent", "Queued runs the broker has not confirmed yet", value=backlog.unsent
        )
        oldest = backlog.oldest_queued_at.timestamp() if backlog.oldest_queued_at else now
        yield GaugeMetricFamily(
            "pipeline_oldest_queued_run_age_seconds", "Age of the oldest queued run (0: none)", value=now - oldest
        )
        yield GaugeMetricFamily(
            "pipeline_schedules_due", "Scheduled rows whose refresh time has passed", value=backlog.schedules_due
        )
        due = backlog.oldest_due_at.timestamp() if backlog.oldest_due_at else now
        yield GaugeMetricFamily(
            "pipeline_schedules_behind_seconds", "How late the most overdue scheduled row is (0: none)", value=now - due
        )
