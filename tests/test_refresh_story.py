"""The refresh story (brief, steps 5-7) under concurrency and faults, on the real services."""

import base64
import io
import threading
import time
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse
from PIL import Image

from functions import selectors, services
from functions.models import Function
from pipeline import status
from tests.rows import make_rows
from tests.rows import settled as wait_for_runs
from tests.stack import http_ok, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

LIST_URL = reverse("admin:functions_function_changelist")


def assert_chart(row: Function) -> None:
    assert row.state == Function.State.DONE, row.error
    image = Image.open(io.BytesIO(bytes(row.chart)))
    assert image.format == "PNG" and image.size[0] > 0


def test_the_refresh_action_queues_the_selected_rows_and_says_how_many(stack, client):
    client.force_login(get_user_model().objects.create_superuser("r", "r@example.com", "pw-for-tests-3"))
    rows = make_rows(3)
    chosen = [rows[0].pk, rows[2].pk]
    response = client.post(LIST_URL, {"action": "refresh", "_selected_action": chosen}, follow=True)
    assert "2 functions queued for refresh" in response.content.decode()
    settled = wait_for_runs(chosen, 60)
    for row in settled:
        assert_chart(row)
    assert Function.objects.get(pk=rows[1].pk).run_id is None  # not selected, not touched
    page = client.get(LIST_URL).content.decode()
    assert "2 done, 0 failed of 2" in page  # the batch's progress, counted in PostgreSQL


def test_a_batch_of_fifty_rows_ends_with_fifty_new_images_and_dates(stack):
    rows = make_rows(50)
    services.refresh_functions(rows)
    first = wait_for_runs([r.pk for r in rows], 180)
    first_dates = {r.pk: r.processed_at for r in first}
    for row in first:
        assert_chart(row)
    assert len({r.run_id for r in first}) == 50
    batch = selectors.recent_batches(1)[0]
    assert (batch.total, batch.done, batch.failed) == (50, 50, 0)

    time.sleep(0.01)
    services.refresh_functions(Function.objects.filter(pk__in=first_dates))
    second = wait_for_runs(list(first_dates), 180)
    for row in second:
        assert_chart(row)
        assert row.processed_at > first_dates[row.pk]


def test_the_persist_worker_keeps_its_database_connection_from_chart_to_chart(stack):
    """The persist worker reuses its PostgreSQL connection (CONN_MAX_AGE) instead of
    opening one, a new server process, per chart: Celery's Django fixup alone closes it
    after every task, so none would be left once the batch is stored."""
    rows = make_rows(20)
    services.refresh_functions(rows)
    settled = wait_for_runs([r.pk for r in rows], 120)
    last_persist = max(r.trace["persist"]["started"] for r in settled)
    with connection.cursor() as cur:  # the admin's role; datagen has its own
        cur.execute(
            "SELECT extract(epoch FROM backend_start)::float8 FROM pg_stat_activity "
            "WHERE datname = current_database() AND usename = current_user AND pid <> pg_backend_pid()"
        )
        opened = [start for (start,) in cur.fetchall()]
    assert any(start < last_persist for start in opened), f"no persist connection outlived its task: {opened}"


def test_two_overlapping_refreshes_the_last_one_started_wins(stack):
    (row,) = make_rows(1)
    services.refresh_functions([row])
    first_run = Function.objects.get(pk=row.pk).run_id
    services.refresh_functions(Function.objects.filter(pk=row.pk))
    last_run = Function.objects.get(pk=row.pk).run_id
    assert first_run != last_run
    (settled,) = wait_for_runs([row.pk], 60)
    assert settled.result_run == last_run
    assert_chart(settled)
    time.sleep(1)  # the first run's persist, if it came later, must not have changed anything
    settled.refresh_from_db()
    assert settled.result_run == last_run


def test_a_render_worker_killed_mid_batch_loses_nothing(stack):
    rows = make_rows(16)
    pks = [r.pk for r in rows]
    services.refresh_functions(rows)
    # Wait until the render worker is busy, then kill it and its pool outright.
    wait_until(
        lambda: any(s.stage == status.RENDERING for s in status.row_statuses(pks).values()),
        30,
        "a render in progress",
        poll=0.05,
    )
    stack.workers["render"].kill()
    time.sleep(1)
    assert Function.objects.filter(pk__in=pks, state=Function.State.QUEUED).exists()
    stack.restart_worker("render")
    for row in wait_for_runs(pks, 120):
        assert_chart(row)


def test_export_servers_stopped_mid_batch_rows_retry_and_succeed(stack):
    rows = make_rows(6)
    pks = [r.pk for r in rows]
    for exporter in stack.exporters:
        exporter.stop()
    try:
        services.refresh_functions(rows)
        wait_until(
            lambda: all(s.stage == status.RENDERING for s in status.row_statuses(pks).values()) or None,
            30,
            "every row to reach the render stage",
        )
        time.sleep(1.5)  # a retry or two hit the stopped servers
    finally:
        for exporter in stack.exporters:
            exporter.start()
        for url in stack.exporter_urls:
            wait_until(lambda url=url: http_ok(url + "/health"), 60, url)
    settled = wait_for_runs(pks, 120)
    for row in settled:
        assert_chart(row)
    assert max(row.trace["render"]["attempts"] for row in settled) > 1


def test_an_edit_racing_a_refresh_never_clobbers_the_stored_result_or_the_newer_run(stack):
    (row,) = make_rows(1)
    services.refresh_functions([row])
    stale = Function.objects.get(pk=row.pk)  # the edit form loads the row while its run is in flight
    (stored,) = wait_for_runs([row.pk], 60)
    assert stale.result_run is None and stored.result_run is not None

    services.update_function(stale.pk, dt=stale.dt + 1)  # saved from the form loaded earlier
    edited = Function.objects.get(pk=row.pk)
    assert edited.result_run == stored.result_run and edited.chart is not None  # the result is kept
    assert edited.run_id != stored.run_id and edited.state == Function.State.QUEUED  # a new run for the edit
    assert edited.dt == stale.dt + 1
    (settled,) = wait_for_runs([row.pk], 60)
    assert settled.result_run == edited.run_id
    assert_chart(settled)

    # An edit and a refresh at the same moment: the row ends with the newest run's chart.
    services.refresh_functions([settled])
    services.update_function(row.pk, expression="sin(t) + 1")
    (final,) = wait_for_runs([row.pk], 60)
    assert final.expression == "sin(t) + 1"
    assert_chart(final)
    assert services.update_function(row.pk, expression=" sin(t) + 1 ") == []  # no change, no run
    assert Function.objects.get(pk=row.pk).run_id == final.run_id


def test_at_most_add_wait_concurrency_adds_wait_at_once():
    from django.conf import settings
    from django.db import connection

    def wait() -> None:
        try:
            selectors.wait_for_outcome(0, uuid.uuid4(), 3)
        finally:
            connection.close()  # this thread's own connection

    limit = settings.ADD_WAIT_CONCURRENCY
    waiting = [threading.Thread(target=wait) for _ in range(limit)]
    for thread in waiting:
        thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    assert selectors.wait_for_outcome(0, uuid.uuid4(), 3) is False
    assert time.monotonic() - started < 0.5  # answered at once: every waiting slot was taken
    for thread in waiting:
        thread.join()
    started = time.monotonic()
    assert selectors.wait_for_outcome(0, uuid.uuid4(), 0.3) is False
    assert time.monotonic() - started >= 0.3  # slots free again: it waited


def _queued_run(row: Function) -> str:
    """A queued run of ``row`` that no worker will take (made here, never sent)."""
    from django.utils import timezone

    from functions.models import Run

    run = Run.objects.create(
        id=uuid.uuid4(),
        function=row,
        expression=row.expression,
        dt=row.dt,
        interval=row.interval,
        queued_at=timezone.now(),
    )
    Function.objects.filter(pk=row.pk).update(run_id=run.pk, state=Function.State.QUEUED)
    return str(run.pk)


def _waiter_listening(pk: int) -> bool:
    """True once a waiter on row ``pk`` has looked once and sits idle, listening."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle' AND pid <> pg_backend_pid()"
            ' AND query LIKE \'SELECT 1 AS "a" FROM "functions_function"%%\' AND query LIKE %s',
            [f'%"functions_function"."id" = {pk}%'],
        )
        return cursor.fetchone()[0] > 0


def _wait_in_thread(pk: int, run: str, poll: float) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def wait() -> None:
        try:
            outcome["stored"] = selectors.wait_for_outcome(pk, run, 30, poll=poll)
            outcome["at"] = time.monotonic()
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=wait)
    thread.start()
    wait_until(lambda: _waiter_listening(pk), 10, "the waiter to listen", poll=0.01)
    return thread, outcome


def test_an_add_waiting_for_its_chart_wakes_at_the_commit_that_stores_it():
    """The Add's wait ends when PostgreSQL announces the outcome, not at its poll (10 s here);
    another row's outcome does not end it."""
    mine, other = make_rows(2)
    run, other_run = _queued_run(mine), _queued_run(other)
    png = base64.b64encode(b"\x89PNG not drawn here").decode()
    thread, outcome = _wait_in_thread(mine.pk, run, poll=10)
    assert services.store_result({"run_id": other_run, "png": png, "trace": {}})
    thread.join(0.5)
    assert thread.is_alive()  # another row's announcement: still waiting
    stored = time.monotonic()
    assert services.store_result({"run_id": run, "png": png, "trace": {}})
    thread.join(5)
    assert outcome["stored"] is True
    assert outcome["at"] - stored < 1.0, outcome["at"] - stored  # woken by the commit, not by the 10 s poll


def test_a_failed_run_also_wakes_its_add_and_an_unannounced_outcome_is_found_at_the_poll():
    first, second = make_rows(2)
    run = _queued_run(first)
    thread, outcome = _wait_in_thread(first.pk, run, poll=10)
    stored = time.monotonic()
    assert services.fail_runs([run], "lost") == 1
    thread.join(5)
    assert outcome["stored"] is True and outcome["at"] - stored < 1.0
    # A row stored without the announcement (a persist worker of an older release): the poll finds it.
    run = _queued_run(second)
    thread, outcome = _wait_in_thread(second.pk, run, poll=1)
    stored = time.monotonic()
    Function.objects.filter(pk=second.pk).update(result_run=run, state=Function.State.DONE)
    thread.join(5)
    assert outcome["stored"] is True and outcome["at"] - stored < 1.5
