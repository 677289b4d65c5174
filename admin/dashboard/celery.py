"""The Celery app as the persist worker runs it: the pipeline's app plus Django.

Start the persist worker with ``celery -A dashboard worker -Q persist``. The
app, its configuration and routing are the pipeline's (``pipeline.celery``);
this module only sets up Django and registers the persist task.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

from pipeline.celery import app  # noqa: E402

app.autodiscover_tasks(["functions"])

__all__ = ["app"]
