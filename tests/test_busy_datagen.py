"""datagen busy (every heavy slot taken: 503 ``busy`` + Retry-After), on the real services.

The heavy slot is a PostgreSQL advisory lock (datagen/series/slots.py); the test
takes it itself, so the stack's datagen answers busy until the test lets it go. The
pipeline waits for it; the admin's points and CSV views pass it on to the browser.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from functions import services
from functions.models import Function
from pipeline import clients, settings
from pipeline.charts import plot_width
from pipeline.errors import TransientFailure
from tests.stack import Process, http_ok, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

HEAVY_LOCK_KEY = 0x4447454E  # datagen's series.slots.HEAVY_LOCK_KEY ("DGEN"); slot 0 of DATAGEN_HEAVY_SLOTS=1
HEAVY = {"expression": "sin(t)", "interval": 50.0, "dt": 0.001}  # 1.2 million samples: heavy


@contextmanager
def heavy_slot_taken() -> Iterator[None]:
    params = connection.settings_dict
    conn = psycopg2.connect(
        host=params["HOST"],
        port=params["PORT"],
        dbname=params["NAME"],
        user=params["USER"],
        password=params["PASSWORD"],
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s, 0)", [HEAVY_LOCK_KEY])
        yield
    finally:
        conn.close()  # ends the session: the slot is free


@pytest.fixture
def datagen() -> Iterator[None]:
    """datagen alone on the test database (the session's stack's, when that runs already)."""
    url = os.environ["DATAGEN_URL"] + "/health"
    try:
        if http_ok(url):
            yield
            return
    except OSError:
        pass
    env = {**os.environ, "POSTGRES_DB": connection.settings_dict["NAME"]}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    process = Process("datagen-alone", ["datagen"], env).start()
    try:
        wait_until(lambda: process.running and http_ok(url), 60, "datagen")
        yield
    finally:
        process.stop()


def test_the_admin_passes_datagen_busy_and_its_retry_after_to_the_browser(admin_client, datagen):
    # 144,001 samples: raw (the CSV) more than DATAGEN_HEAVY_RAW_POINTS, so heavy;
    # 1.2 million: heavy also decimated (the interactive chart's points).
    csv_row = Function.objects.create(
        expression="t", interval=100.0, dt=1 / 60, state=Function.State.DONE, processed_at=timezone.now()
    )
    points_row = Function.objects.create(**HEAVY, state=Function.State.DONE, processed_at=timezone.now())
    csv_url = reverse("admin:functions_function_csv", args=[csv_row.pk])
    points_url = reverse("admin:functions_function_points", args=[points_row.pk])
    with heavy_slot_taken():
        csv_busy = admin_client.get(csv_url)
        points_busy = admin_client.get(points_url, {"width": 800})
        small = admin_client.get(points_url, {"start": csv_row.processed_at.timestamp() - 3600, "width": 800})
    csv_after = admin_client.get(csv_url)
    assert csv_busy.status_code == 503, csv_busy.content[:300]
    assert csv_busy["Retry-After"] == "2"
    assert b"busy" in csv_busy.content or b"heavy" in csv_busy.content
    assert points_busy.status_code == 503, points_busy.content[:300]
    assert points_busy["Retry-After"] == "2"
    assert "heavy" in points_busy.json()["errors"][0]["message"]
    assert small.status_code == 200 and small.json()["decimated"] is False  # the last hour: 3,601 samples
    assert csv_after.status_code == 200
    lines = b"".join(csv_after.streaming_content).splitlines()
    assert lines[0] == b"t_unix_seconds,t_utc,y" and len(lines) == 144_002


def test_a_busy_datagen_is_waited_for_and_the_row_ends_done(stack):
    row = Function.objects.create(**HEAVY)  # no run yet: the refresh below is its first
    with heavy_slot_taken():
        with pytest.raises(TransientFailure, match="HTTP 503: .*code busy") as busy:
            clients.fetch_points(HEAVY["expression"], HEAVY["interval"], HEAVY["dt"], plot_width(settings.CHART_WIDTH))
        assert busy.value.retry_after == 2.0  # DATAGEN_RETRY_AFTER's default
        assert services.refresh_functions(Function.objects.filter(pk=row.pk)) == 1
        time.sleep(3)  # the points stage is answered busy and waits Retry-After, at least once
    done = wait_until(
        lambda: (r := Function.objects.get(pk=row.pk)).result_run == r.run_id and r.state != r.State.QUEUED and r,
        90,
        "the heavy row to settle",
        poll=0.25,
    )
    assert done.state == Function.State.DONE, done.error
    assert done.trace["points"]["attempts"] >= 2, done.trace
