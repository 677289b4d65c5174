"""Benchmark: the schedule's dispatcher tick (services.dispatch_due_schedules) at 10,000 scheduled rows.

Prints, on the real PostgreSQL and RabbitMQ (the runs are sent: one fan-out message per
page of SCHEDULE_PAGE rows, purged afterwards; no worker runs them here):

1. 10,000 rows every minute, all due at once (the worst tick: beat was down, or every
   row got its schedule at the same moment): the tick's wall time, pages, rows queued.
2. the next tick, the same 10,000 rows due again while their runs are still queued
   (nothing drawn them yet): every row skipped, next times moved on.
3. a tick with nothing due (10,000 rows scheduled): the idle cost, every PIPELINE_SCHEDULE_EVERY.
4. steady state: the rows spread over the minute as the schedule spreads them, one tick
   of PIPELINE_SCHEDULE_EVERY seconds' worth of due rows.

With ``--celery-beat-python PY`` (a Python with django-celery-beat installed, e.g. a
throwaway venv: ``uv venv /tmp/dcb && uv pip install --python /tmp/dcb/bin/python
django-celery-beat psycopg2-binary``) it also runs ``tests/bench_celery_beat.py`` there:
django-celery-beat's DatabaseScheduler with the same 10,000 schedules.

With ``--sustained`` it then runs the whole stack (datagen, the export servers, the three
workers, tests/stack.py) and ticks the dispatcher every ``PIPELINE_SCHEDULE_EVERY`` seconds (the
task beat sends runs this same function) for two loads, printing per load the ticks' time,
sustained charts/s, the stage queues' peak depth and how far behind rows fall (the oldest
queued run's age, as the list counts "behind"): 10,000 rows every minute (3 minutes), then
1,000 rows every 5 minutes (6 minutes, the lag at steady state).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TEST_SLOT", "9")
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from functions import services  # noqa: E402
from functions.models import Function, Run  # noqa: E402
from pipeline import api  # noqa: E402
from pipeline.celery import app  # noqa: E402
from tests.bench_db import create_database  # noqa: E402


def tick(label: str) -> services.Dispatched:
    started = time.perf_counter()
    dispatched = services.dispatch_due_schedules()
    seconds = time.perf_counter() - started
    print(
        f"{label:58s} {seconds:7.3f} s  queued {dispatched.queued:6d}, skipped {dispatched.skipped:6d},"
        f" {dispatched.pages} pages"
    )
    return dispatched


def sustained(rows_count: int, every: int, minutes: float) -> None:
    """``rows_count`` rows every ``every`` s on the whole stack for ``minutes``; prints the figures."""
    import statistics

    from tests.stack import Stack

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dashboard.settings", "CELERY_LOG_LEVEL": "ERROR"}
    env["POSTGRES_DB"] = connection.settings_dict["NAME"]
    Function.objects.all().delete()
    app.control.purge()
    stack = Stack(env)
    stack.start()
    try:
        rows = Function.objects.bulk_create(
            Function(expression="sin(t / 3600)", dt=1, interval=1, state=Function.State.DONE) for _ in range(rows_count)
        )
        started_at = timezone.now()
        services.set_schedule([row.pk for row in rows], every)
        ticks, depths, lags = [], [], []
        started = time.monotonic()
        while time.monotonic() - started < minutes * 60:
            began = time.perf_counter()
            services.dispatch_due_schedules()
            ticks.append(time.perf_counter() - began)
            depths.append(api.queued_messages() or 0)
            oldest = Run.objects.filter(state=Run.State.QUEUED).order_by("queued_at").values_list("queued_at").first()
            lags.append((timezone.now() - oldest[0]).total_seconds() if oldest else 0.0)
            time.sleep(max(0.0, api.SCHEDULE_EVERY - (time.perf_counter() - began)))  # the beat's cadence
        elapsed = time.monotonic() - started
        drawn = Run.objects.filter(state=Run.State.DONE, finished_at__gte=started_at).count()
        failed = Run.objects.filter(state=Run.State.FAILED, finished_at__gte=started_at).count()
        half = len(lags) // 2
        print(
            f"{rows_count} rows every {every} s for {elapsed:.0f} s: {len(ticks)} ticks, tick median"
            f" {statistics.median(ticks):.3f} s, max {max(ticks):.3f} s; {drawn} charts ({drawn / elapsed:.1f}/s),"
            f" {failed} failed; stage queues peak {max(depths)} messages;"
            f" behind (oldest queued run): max {max(lags):.0f} s, median of the second half"
            f" {statistics.median(lags[half:]):.0f} s, at the end {lags[-1]:.0f} s"
        )
    finally:
        stack.stop()
        app.control.purge()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=60)
    parser.add_argument("--celery-beat-python", default=os.environ.get("CELERY_BEAT_PYTHON", ""))
    parser.add_argument("--sustained", action="store_true", help="also the two loads on the whole stack")
    args = parser.parse_args()

    create_database()
    app.control.purge()
    rows = Function.objects.bulk_create(
        Function(expression="t + 2/t", dt=1, interval=1, state=Function.State.DONE) for _ in range(args.rows)
    )
    pks = [row.pk for row in rows]
    started = time.perf_counter()
    services.set_schedule(pks, args.every)
    print(f"{args.rows} rows, every {args.every} s, page {settings.SCHEDULE_PAGE}, tick every {api.SCHEDULE_EVERY} s")
    print(f"{'schedule set for every row (one transaction)':58s} {time.perf_counter() - started:7.3f} s")
    with connection.cursor() as cursor:
        # Earlier runs of this benchmark left dead rows behind (every tick rewrites 10,000):
        # measured on a vacuumed table, as autovacuum keeps a live one.
        cursor.execute("VACUUM ANALYZE functions_function")
        cursor.execute("VACUUM ANALYZE functions_run")

    Function.objects.update(next_refresh_at=timezone.now() - timedelta(seconds=1))
    first = tick("1. tick: every row due at once")
    second_due = timezone.now() - timedelta(seconds=1)
    Function.objects.update(next_refresh_at=second_due)
    tick("2. tick: every row due again, its run still queued (skipped)")
    tick("3. tick: nothing due")

    # Steady state: the runs landed; the rows on their spread phases, one tick's worth due.
    Run.objects.filter(state=Run.State.QUEUED).update(state=Run.State.DONE, finished_at=timezone.now())
    Function.objects.update(state=Function.State.DONE, result_run=None)
    now = timezone.now()
    services.set_schedule(pks, args.every)
    window = now + timedelta(seconds=api.SCHEDULE_EVERY)
    due = Function.objects.filter(next_refresh_at__lte=window).update(next_refresh_at=now - timedelta(seconds=1))
    print(f"steady state: {due} rows due in one tick of {api.SCHEDULE_EVERY:.0f} s")
    tick("4. tick: steady state")
    app.control.purge()
    assert first.queued == args.rows

    if args.celery_beat_python:
        print("\ndjango-celery-beat's DatabaseScheduler, the same schedules:")
        subprocess.run(
            [args.celery_beat_python, str(ROOT / "tests" / "bench_celery_beat.py"), "--rows", str(args.rows)],
            check=True,
            env={**os.environ, "POSTGRES_DB": f"bench_celery_beat_{os.environ['TEST_SLOT']}"},
        )
    else:
        print("\ndjango-celery-beat: not measured (pass --celery-beat-python, see the docstring)")
    if args.sustained:
        print("\nsustained, the whole stack:")
        sustained(args.rows, args.every, 3)
        sustained(1_000, 300, 6)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
