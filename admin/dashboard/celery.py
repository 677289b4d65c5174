"""The Celery app as the persist worker runs it: the pipeline's app plus Django.

Start the persist worker with ``celery -A dashboard worker -Q persist``. The
app, its configuration and routing are the pipeline's (``pipeline.celery``);
this module only sets up Django and registers the persist task.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

from celery import signals  # noqa: E402
from django import db  # noqa: E402

from pipeline.api import add_scrape_collector, app  # noqa: E402

app.autodiscover_tasks(["functions"])


@signals.worker_init.connect
def _backlog_metrics(**_: object) -> None:
    """The persist worker's /metrics also answers with PostgreSQL's backlog (runs, schedules)."""
    from functions.metrics import BacklogCollector

    add_scrape_collector(BacklogCollector())


# Tasks get Django's connection lifecycle of requests: a connection is reused
# until CONN_MAX_AGE and dropped when it broke (close_old_connections before and
# after each task; CONN_HEALTH_CHECKS pings it first). Celery's Django fixup
# would otherwise close it after every task, so every persisted chart paid for
# a new PostgreSQL connection (a backend process); with its reuse setting it
# only closes them every CELERY_DB_REUSE_MAX tasks, and the handlers below
# close a broken one at once.
app.conf.CELERY_DB_REUSE_MAX = 1000


@signals.task_prerun.connect
@signals.task_postrun.connect
def close_old_connections(sender: object = None, **kwargs: object) -> None:
    if not getattr(getattr(sender, "request", None), "is_eager", False):  # eager: the caller's connection
        db.close_old_connections()


__all__ = ["app"]
