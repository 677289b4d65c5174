"""datagen busy (every heavy slot taken: 503 ``busy`` + Retry-After), on the real services.

The heavy slot is a PostgreSQL advisory lock (datagen/series/slots.py); the test
takes it itself, so the stack's datagen answers busy until the test lets it go.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import pytest
from django.db import connection

from functions import services
from functions.models import Function
from pipeline import clients, settings
from pipeline.charts import plot_width
from pipeline.errors import TransientFailure
from tests.stack import wait_until

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
