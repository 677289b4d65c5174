"""One truth per row: PostgreSQL decides every run's outcome, on the real services.

A run only moves forward (queued -> done | failed | superseded), a duplicate of a
finished run changes nothing, the newest run draws the newest edit, a batch is
counted by SQL whatever happens to Redis, and a run the broker never got is sent
later, never failed for it. Races start together at a barrier; each check reads
what the render stage drew (``trace["render"]["drawn"]``), not only that a PNG exists.
"""

from __future__ import annotations

import base64
import io
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import celery
import pytest
from django.db import connection, connections
from django.test.utils import override_settings
from django.utils import timezone
from PIL import Image

from functions import selectors, services
from functions.models import Batch, Function, Run
from pipeline import api, canvas, jobs, status
from pipeline.celery import PERSIST_TASK, app
from tests.rows import make_rows, settled
from tests.stack import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]


def assert_drawn_from_row(row: Function) -> None:
    """The stored chart is a PNG drawn from the row's own expression and sampling."""
    assert row.state == Function.State.DONE, row.error
    assert Image.open(io.BytesIO(bytes(row.chart))).format == "PNG"
    drawn = row.trace["render"]["drawn"]
    assert drawn == {"expression": row.expression, "dt": row.dt, "interval": row.interval}, (drawn, row.pk)


def together(*actions: Callable[[], object]) -> list[object]:
    """Run each action in its own thread (own database connection), released at one barrier."""
    barrier = threading.Barrier(len(actions))
    results: list[object] = [None] * len(actions)
    errors: list[BaseException] = []

    def run(index: int, action: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = action()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, action)) for i, action in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return results


def png_b64() -> str:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def persist(job: dict) -> dict:
    """The persist stage on the real persist worker."""
    return app.signature(PERSIST_TASK, args=(job,)).apply_async().get(timeout=30)


def queue_unsent(monkeypatch, pks: list[int], batch: bool = True) -> list[Run]:
    """Queue runs as the admin does, with a broker that takes nothing (they stay unsent)."""

    def broken(to_send):
        raise canvas.SendFailed("the message broker (test) did not take the work", [])

    with monkeypatch.context() as patched:
        patched.setattr(api, "start_refresh", broken)
        services.queue_refresh(pks, batch=batch)
    return list(Run.objects.filter(function_id__in=pks, state=Run.State.QUEUED))


# ----------------------------------------------------------------------------- forward-only outcomes


def test_a_duplicate_of_a_finished_run_never_turns_done_into_failed(stack):
    (row,) = make_rows(1)
    services.refresh_functions([row])
    (done,) = settled([row.pk])
    assert_drawn_from_row(done)
    duplicate = {
        **jobs.new_job(row.pk, str(done.run_id), row.expression, row.interval, row.dt),
        "error": 'Stage "render" failed: export server … did not answer',
    }
    assert persist(duplicate)["stored"] is False  # a redelivery of the same run, failing after it succeeded
    again = Function.objects.get(pk=row.pk)
    assert (again.state, again.error, again.result_run) == (Function.State.DONE, "", done.run_id)
    assert bytes(again.chart) == bytes(done.chart)
    assert Run.objects.get(pk=done.run_id).state == Run.State.DONE


def test_an_older_result_never_overwrites_a_newer_one(stack, monkeypatch):
    (row,) = make_rows(1)
    (older,) = queue_unsent(monkeypatch, [row.pk])
    (newer,) = queue_unsent(monkeypatch, [row.pk])
    assert Run.objects.get(pk=older.pk).state == Run.State.SUPERSEDED  # decided when the newer one was queued

    def job(run: Run, end: float) -> dict:
        return {**services.job_of(run), "png": png_b64(), "end": end}

    # The newer run finishes first; the older one arrives afterwards, through the real persist worker.
    assert persist(job(newer, 2_000_000_000.0))["stored"] is True
    assert persist(job(older, 2_000_000_100.0))["stored"] is False
    row.refresh_from_db()
    assert row.result_run == newer.pk and row.processed_at.timestamp() == 2_000_000_000.0


def test_a_failed_run_keeps_the_last_chart_drawn(stack, monkeypatch):
    (row,) = make_rows(1)
    services.refresh_functions([row])
    (done,) = settled([row.pk])
    (run,) = queue_unsent(monkeypatch, [row.pk])
    assert persist({**services.job_of(run), "error": 'Stage "points" failed: datagen answered HTTP 422'})["stored"]
    failed = Function.objects.get(pk=row.pk)
    assert failed.state == Function.State.FAILED and "HTTP 422" in failed.error
    assert bytes(failed.chart) == bytes(done.chart)  # still there, shown beside the error


# ----------------------------------------------------------------------------- races


def test_a_refresh_racing_an_edit_always_draws_the_newest_expression(stack):
    """The Refresh action (a queryset, as the admin passes it) and an edit, released together, ten times."""
    (row,) = make_rows(1)
    expressions = [f"t + {i}" for i in range(10)]
    for expression in expressions:
        together(
            lambda expression=expression: services.update_function(row.pk, expression=expression),
            lambda: services.refresh_functions(Function.objects.filter(pk=row.pk)),
        )
        assert Run.objects.get(function_id=row.pk, state=Run.State.QUEUED).expression == expression
    (final,) = settled([row.pk])
    assert final.expression == expressions[-1]
    assert_drawn_from_row(final)


def test_an_edit_and_a_refresh_of_many_rows_at_a_barrier_each_row_draws_its_edit(stack):
    rows = make_rows(12)
    pks = [row.pk for row in rows]
    edits = [lambda pk=pk: services.update_function(pk, expression=f"sin(t) + {pk}") for pk in pks[::2]]
    together(lambda: services.refresh_functions(Function.objects.filter(pk__in=pks)), *edits)
    for row in settled(pks):
        assert_drawn_from_row(row)
    assert Run.objects.filter(function_id__in=pks, state=Run.State.QUEUED).count() == 0


def test_two_overlapping_batches_count_every_run_once_in_sql(stack):
    rows = make_rows(8)
    pks = [row.pk for row in rows]
    first_id = services.queue_refresh(pks)
    second_id = services.queue_refresh(pks)
    for row in settled(pks):
        assert_drawn_from_row(row)

    def finished():
        batches = {b.id: b for b in selectors.recent_batches(5)}
        return batches if all(not batches[b].running for b in (first_id, second_id)) else None

    batches = wait_until(finished, 30, "both batches to finish")
    second, first = batches[second_id], batches[first_id]
    assert (second.done, second.failed, second.superseded, second.total) == (8, 0, 0, 8)
    # Each run of the first batch either finished before the second was queued or was superseded then.
    assert (first.done + first.superseded, first.failed, first.total) == (8, 0, 8)
    assert first.superseded == Run.objects.filter(batch_id=first_id, state=Run.State.SUPERSEDED).count() > 0


def test_a_batch_is_counted_right_after_redis_is_flushed_mid_batch(stack):
    rows = make_rows(10)
    pks = [row.pk for row in rows]
    batch = services.queue_refresh(pks)
    wait_until(lambda: Run.objects.filter(batch_id=batch, state=Run.State.DONE).exists(), 60, "a first run done")
    status.client().flushdb()  # every live status and every key the stages wrote is gone
    settled(pks)
    (progress,) = [b for b in selectors.recent_batches(5) if b.id == batch]
    assert (progress.done, progress.failed, progress.total, progress.running) == (10, 0, 10, False)


# ----------------------------------------------------------------------------- sending: the outbox


def test_a_send_that_breaks_after_k_of_n_chains_loses_none_and_fails_none(stack, monkeypatch):
    rows = make_rows(6)
    pks = [row.pk for row in rows]
    real, calls = canvas.refresh_chain, []

    def breaks_after_two(job):
        calls.append(job["run_id"])
        if len(calls) > 2:
            raise ConnectionResetError("the broker went away mid-send")
        return real(job)

    monkeypatch.setattr(canvas, "refresh_chain", breaks_after_two)
    batch = services.queue_refresh(pks)
    monkeypatch.setattr(canvas, "refresh_chain", real)
    assert len(calls) == 3  # the fault was felt: the third send broke
    runs = Run.objects.filter(batch_id=batch)
    assert runs.filter(sent_at__isnull=False).count() == 2 and runs.filter(state=Run.State.FAILED).count() == 0
    with override_settings(RESEND_UNSENT_AFTER_SECONDS=0):
        wait_until(lambda: services.sweep_runs().sent == 4, 10, "the sweep to send the 4 unsent runs")
    for row in settled(pks):
        assert_drawn_from_row(row)
    assert sorted(Run.objects.filter(batch_id=batch).values_list("sends", flat=True)) == [1] * 6
    (progress,) = [b for b in selectors.recent_batches(5) if b.id == batch]
    assert (progress.done, progress.failed, progress.total) == (6, 0, 6)


def test_runs_committed_but_never_sent_are_sent_by_the_sweep_and_keep_their_chart_meanwhile(stack, monkeypatch):
    rows = make_rows(3)
    pks = [row.pk for row in rows]
    services.refresh_functions(rows)
    before = {row.pk: bytes(row.chart) for row in settled(pks)}
    queue_unsent(monkeypatch, pks)  # as if the admin died between its commit and its send
    waiting = Function.objects.filter(pk__in=pks)
    assert all(row.state == Function.State.QUEUED and bytes(row.chart) == before[row.pk] for row in waiting)
    with override_settings(RESEND_UNSENT_AFTER_SECONDS=0):
        assert services.sweep_runs().sent == 3
    for row in settled(pks):
        assert_drawn_from_row(row)


def test_two_sweeps_at_once_send_each_unsent_run_once(stack, monkeypatch):
    rows = make_rows(8)  # at most PIPELINE_FANOUT_OVER: the chains are sent from this process
    pks = [row.pk for row in rows]
    runs = queue_unsent(monkeypatch, pks)
    published: list[str] = []
    real = canvas.refresh_chain

    def counted(job):
        published.append(job["run_id"])
        return real(job)

    monkeypatch.setattr(canvas, "refresh_chain", counted)
    with override_settings(RESEND_UNSENT_AFTER_SECONDS=0):
        first, second = together(services.sweep_runs, services.sweep_runs)
    assert first.sent + second.sent == 8 and sorted(published) == sorted(str(run.pk) for run in runs)
    for row in settled(pks):
        assert_drawn_from_row(row)


def test_a_quiet_run_is_sent_again_and_one_lost_for_good_fails_keeping_its_chart(stack, monkeypatch):
    rows = make_rows(2)
    pks = [row.pk for row in rows]
    services.refresh_functions(rows)
    charts = {row.pk: bytes(row.chart) for row in settled(pks)}
    quiet, lost = queue_unsent(monkeypatch, pks)
    long_ago = quiet.queued_at.replace(year=quiet.queued_at.year - 1)
    # Sent (so the admin thinks) a year ago, and no stage heard of since: their messages are gone.
    Run.objects.filter(pk=quiet.pk).update(sent_at=long_ago, sends=1)
    Run.objects.filter(pk=lost.pk).update(sent_at=long_ago, sends=3)
    swept = services.sweep_runs()
    assert (swept.sent, swept.resent, swept.failed) == (0, 1, 1)
    again = settled([quiet.function_id])[0]
    assert_drawn_from_row(again)
    assert Run.objects.get(pk=quiet.pk).sends == 2
    assert again.trace["points"]["queue"] == "points"
    failed = Function.objects.get(pk=lost.function_id)
    assert failed.state == Function.State.FAILED and "sent 3 times" in failed.error, failed.error
    assert bytes(failed.chart) == charts[failed.pk]


def test_a_run_a_stage_reported_on_recently_is_not_sent_again(stack, monkeypatch):
    (row,) = make_rows(1)
    (run,) = queue_unsent(monkeypatch, [row.pk])
    long_ago = run.queued_at.replace(year=run.queued_at.year - 1)
    Run.objects.filter(pk=run.pk).update(sent_at=long_ago, sends=1)
    # e.g. a render retrying a busy export server just now
    status.begin(row.pk, str(run.pk), run.queued_at.timestamp(), status.RENDERING, "test")
    assert services.sweep_runs() == services.Swept(0, 0, 0)
    assert Run.objects.get(pk=run.pk).state == Run.State.QUEUED


# ----------------------------------------------------------------------------- stages and versions


def test_a_superseded_run_stops_at_its_next_stage(stack, monkeypatch):
    (row,) = make_rows(1)
    (older,) = queue_unsent(monkeypatch, [row.pk])
    (newer,) = queue_unsent(monkeypatch, [row.pk])
    status.start_runs([(row.pk, str(newer.pk), newer.queued_at.timestamp())])
    canvas.refresh_chain(services.job_of(older)).apply_async()
    # Each stage that starts counts its start in Redis and takes it back when it ends: once
    # persist's count is back to 0, the chain went through (points skipped, persist skipped).
    started = status.client()
    wait_until(lambda: started.get(f"fd:started:{older.pk}.persist:0") == "0", 30, "the chain to go through")
    assert started.get(f"fd:started:{older.pk}.points:0") == "0"
    row.refresh_from_db()
    assert row.result_run is None and row.run_id == newer.pk  # nothing stored for it
    assert status.row_statuses([row.pk])[row.pk].stage == status.QUEUED  # no stage of the older run reported


@pytest.mark.parametrize("first", ["points", "render", "persist"])
def test_a_job_sent_by_another_release_is_failed_readably_by_each_stage(stack, monkeypatch, first):
    """Each stage (on its real worker) refuses a job of another version and names both versions.

    The job carries what the stage needs (points for render, a PNG for persist),
    so a stage that did not check the version would store a chart instead."""
    (row,) = make_rows(1)
    (run,) = queue_unsent(monkeypatch, [row.pk])
    end = time.time()
    job = {
        **services.job_of(run),
        "version": jobs.VERSION + 1,
        "points": [[end - 3600.0, 1.0], [end, 2.0]],
        "end": end,
        "png": png_b64(),
    }
    start = ["points", "render", "persist"].index(first)
    links = list(canvas.refresh_chain(job).tasks)[start:]  # the chain the admin sends, from that stage on
    links[0] = links[0].replace(args=(job,))
    celery.chain(*links).apply_async()
    (done,) = settled([row.pk], 60)
    assert done.state == Function.State.FAILED and done.chart is None
    assert done.error == f'Stage "{first}" failed: job version {jobs.VERSION + 1} is not {jobs.VERSION}'


def test_at_most_one_queued_run_per_row_is_enforced_by_postgresql(stack, monkeypatch):
    from django.db import IntegrityError, transaction

    (row,) = make_rows(1)
    (run,) = queue_unsent(monkeypatch, [row.pk])
    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.create(id=uuid.uuid4(), function=row, expression="t", dt=1, interval=1, queued_at=run.queued_at)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM functions_run WHERE function_id = %s AND state = 'queued'", [row.pk])
        assert cursor.fetchone()[0] == 1


def test_old_finished_runs_are_pruned_but_never_a_rows_current_or_stored_run(stack, monkeypatch):
    rows = make_rows(2)
    pks = [row.pk for row in rows]
    for _ in range(3):
        queue_unsent(monkeypatch, pks)  # two superseded runs per row, one queued
    current = set(Function.objects.filter(pk__in=pks).values_list("run_id", flat=True))
    long_ago = timezone.now() - timedelta(days=30)
    Run.objects.filter(function_id__in=pks).update(finished_at=long_ago)
    Batch.objects.filter(runs__function_id__in=pks).update(started_at=long_ago)
    assert services.prune_history() == 4
    assert set(Run.objects.filter(function_id__in=pks).values_list("pk", flat=True)) == current
    assert not Batch.objects.filter(started_at=long_ago).exclude(runs__isnull=False).exists()


def test_the_list_says_a_row_waits_for_the_broker_while_its_run_is_unsent(stack, monkeypatch, client):
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    client.force_login(get_user_model().objects.create_superuser("lister", "l@example.com", "pw-for-tests-9"))
    (row,) = make_rows(1)
    queue_unsent(monkeypatch, [row.pk])
    live = client.get(reverse("admin:functions_function_live_rows"), {"ids": str(row.pk)}).json()
    assert "waiting for the broker" in live["rows"][0]["cells"]["status"]
    with override_settings(RESEND_UNSENT_AFTER_SECONDS=0):
        assert services.sweep_runs().sent == 1
    settled([row.pk])
    live = client.get(reverse("admin:functions_function_live_rows"), {"ids": str(row.pk)}).json()
    assert live["rows"][0]["in_progress"] is False
