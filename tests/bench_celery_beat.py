"""django-celery-beat's DatabaseScheduler at N schedules: what the column dispatcher was measured against.

Run by ``tests/bench_schedules.py --celery-beat-python PY`` with a Python that has
django-celery-beat (not a dependency of the project). It creates its own database
(``POSTGRES_DB``), migrates django_celery_beat, creates N PeriodicTasks every 60 s (one
per row, as a per-row schedule would be, each sending a task with the row id), all due,
and drives beat's own loop (``Scheduler.tick`` until nothing is due) with the project's
``beat_sync_every = 1``. The messages go to Celery's in-memory transport, so only the
scheduler's own work is timed (the dispatcher's figures include RabbitMQ and Redis).
Each task it sends would still have to queue its row (a transaction per row).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django_celery_beat"],
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("POSTGRES_HOST", "127.0.0.1"),
            "PORT": os.environ.get("POSTGRES_PORT", "5432"),
            "NAME": os.environ.get("POSTGRES_DB", "bench_celery_beat"),
            "USER": os.environ.get("POSTGRES_USER", "postgres"),
            "PASSWORD": os.environ.get("POSTGRES_PASSWORD", ""),
        }
    },
    USE_TZ=True,
    TIME_ZONE="UTC",
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
)
django.setup()

import psycopg2  # noqa: E402
from celery import Celery  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks  # noqa: E402
from django_celery_beat.schedulers import DatabaseScheduler  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--budget", type=float, default=120.0, help="stop after this many seconds of ticking")
    args = parser.parse_args()
    db = settings.DATABASES["default"]
    conn = psycopg2.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"], dbname="postgres"
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS " + db["NAME"])
        cur.execute("CREATE DATABASE " + db["NAME"])
    conn.close()
    call_command("migrate", verbosity=0)

    every, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
    due = timezone.now() - timedelta(seconds=61)
    PeriodicTask.objects.bulk_create(
        PeriodicTask(
            name=f"refresh row {i}", task="pipeline.refresh_row", interval=every, args=f"[{i}]", last_run_at=due
        )
        for i in range(args.rows)
    )
    PeriodicTasks.update_changed()

    app = Celery("bench", broker="memory://", set_as_current=True)
    app.conf.beat_sync_every = 1  # as the project's beat (its healthcheck reads the schedule's freshness)
    app.conf.beat_max_loop_interval = 5
    started = time.perf_counter()
    scheduler = DatabaseScheduler(app=app, lazy=False)
    loaded = time.perf_counter() - started
    print(f"  {args.rows} PeriodicTasks: scheduler start (loads every entry) {loaded:7.3f} s")

    counted = [0]

    def count(execute, sql, params, many, context):
        counted[0] += 1
        return execute(sql, params, many, context)

    sent = 0
    started = time.perf_counter()
    with connection.execute_wrapper(count):
        while time.perf_counter() - started < args.budget:
            wait = scheduler.tick()  # beat's loop: 0 means "another entry is due, tick again"
            if wait:
                break
            sent += 1
    seconds = time.perf_counter() - started
    queries = counted[0]
    done = "all" if sent >= args.rows else f"stopped after {args.budget:.0f} s"
    print(f"  ticks until nothing due: {sent} tasks sent in {seconds:7.3f} s ({done}),", end=" ")
    print(f"{sent / seconds:8.1f} tasks/s, {queries / max(sent, 1):.1f} queries per task")
    if sent < args.rows:
        print(f"  at that rate the {args.rows} due schedules take {args.rows / (sent / seconds):7.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
