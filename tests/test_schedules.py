"""The refresh schedule on the real database: the dispatcher's tick (services.dispatch_due_schedules).

Due rows are queued once and only once, through the Refresh action's own path
(``queue_refresh``); missed ticks coalesce; next times move on from the schedule
(no drift); a row whose run is still queued is not sent again; two dispatchers
released together at a barrier send no row twice; schedule changes take effect at
once; rows sharing a period are spread over it. The broker is replaced by a
recorder here (what would be sent, and when): the fault suite runs the same
dispatcher on beat with the real services (tests/test_faults.py).
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections
from django.test.utils import override_settings
from django.utils import timezone

from functions import services
from functions.models import Function, Run
from pipeline import api
from tests.rows import make_rows

pytestmark = [pytest.mark.django_db(transaction=True)]


class Broker:
    """Takes every run sent (thread-safe), as a broker that confirms everything."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, jobs: list[api.Job]) -> list[str]:
        with self.lock:
            self.sent.extend(job["run_id"] for job in jobs)
        return [job["run_id"] for job in jobs]


@pytest.fixture
def broker(monkeypatch) -> Broker:
    taken = Broker()
    monkeypatch.setattr(api, "start_refresh", taken)
    return taken


def scheduled(count: int, every: int, due_since: timedelta | None = None) -> list[Function]:
    """``count`` rows every ``every`` seconds; with ``due_since``, due that long ago."""
    rows = make_rows(count)
    services.set_schedule([row.pk for row in rows], every)
    if due_since is not None:
        Function.objects.filter(pk__in=[row.pk for row in rows]).update(next_refresh_at=timezone.now() - due_since)
    return rows


def runs_per_row(pks: list[int]) -> Counter[int]:
    return Counter(Run.objects.filter(function_id__in=pks).values_list("function_id", flat=True))


def test_due_rows_are_queued_once_through_the_refresh_path(broker):
    due = scheduled(3, 60, due_since=timedelta(seconds=1))
    later = scheduled(2, 3600)
    first = services.dispatch_due_schedules()
    second = services.dispatch_due_schedules()  # the next tick: nothing due any more
    pks = [row.pk for row in due]
    assert (first.queued, second.queued) == (3, 0)
    assert runs_per_row(pks + [row.pk for row in later]) == Counter(pks)
    runs = Run.objects.filter(function_id__in=pks)
    assert sorted(broker.sent) == sorted(str(run.id) for run in runs)  # sent once committed
    for row in Function.objects.filter(pk__in=pks):
        assert row.state == Function.State.QUEUED and str(row.run_id) in broker.sent
        run = runs.get(function_id=row.pk)
        assert (run.expression, run.dt, run.interval, run.batch_id) == (row.expression, row.dt, row.interval, None)


def test_missed_ticks_coalesce_into_one_refresh(broker):
    """Beat down for an hour: a row every 5 minutes refreshes once, not twelve times."""
    (row,) = scheduled(1, 300)
    anchor = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    Function.objects.filter(pk=row.pk).update(next_refresh_at=anchor)
    now = anchor + timedelta(hours=1, seconds=7)
    assert services.dispatch_due_schedules(now).queued == 1
    assert services.dispatch_due_schedules(now + timedelta(seconds=10)).queued == 0
    assert runs_per_row([row.pk]) == Counter({row.pk: 1})
    row.refresh_from_db()
    assert row.next_refresh_at == anchor + timedelta(seconds=13 * 300)  # the first time after now, on the grid


def test_next_times_move_on_from_the_schedule_not_from_the_tick(broker):
    """Ticks late by 7 s, then 25 s, then 59 s: the times stay on the row's own grid (no drift)."""
    (row,) = scheduled(1, 60)
    anchor = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    Function.objects.filter(pk=row.pk).update(next_refresh_at=anchor)
    for late, expected in [(7, 60), (60 + 25, 120), (120 + 59, 180)]:
        Run.objects.filter(function_id=row.pk, state=Run.State.QUEUED).update(state=Run.State.DONE)  # it landed
        assert services.dispatch_due_schedules(anchor + timedelta(seconds=late)).queued == 1
        row.refresh_from_db()
        assert row.next_refresh_at == anchor + timedelta(seconds=expected), late


def test_a_row_whose_run_is_still_queued_is_not_sent_again(broker):
    busy, idle = scheduled(2, 60, due_since=timedelta(seconds=5))
    services.queue_refresh([busy.pk], batch=False)  # in flight (a Refresh, or the previous tick)
    (in_flight,) = Run.objects.filter(function_id=busy.pk)
    before = Function.objects.get(pk=busy.pk).next_refresh_at
    dispatched = services.dispatch_due_schedules()
    assert (dispatched.queued, dispatched.skipped) == (1, 1)
    assert runs_per_row([busy.pk, idle.pk]) == Counter({busy.pk: 1, idle.pk: 1})
    in_flight.refresh_from_db()
    assert in_flight.state == Run.State.QUEUED  # left alone, not superseded
    assert Function.objects.get(pk=busy.pk).next_refresh_at > timezone.now() > before  # its time moved on


@override_settings(SCHEDULE_PAGE=40)
def test_two_dispatchers_released_together_send_no_row_twice(broker):
    rows = scheduled(200, 60, due_since=timedelta(seconds=30))
    barrier = threading.Barrier(2)
    results: list[services.Dispatched] = []
    errors: list[BaseException] = []

    def dispatcher() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(services.dispatch_due_schedules())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()  # each thread had its own connection

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    pks = [row.pk for row in rows]
    assert runs_per_row(pks) == Counter({pk: 1 for pk in pks})  # every row once, none twice
    assert sum(result.queued for result in results) == 200
    assert len(broker.sent) == len(set(broker.sent)) == 200
    print("rows per dispatcher:", [result.queued for result in results])


def test_a_schedule_set_or_cleared_takes_effect_at_once(broker):
    (row,) = make_rows(1)
    before = timezone.now()
    assert services.update_function(row.pk, refresh_every=120) == ["refresh_every"]
    row.refresh_from_db()
    assert before < row.next_refresh_at <= before + timedelta(seconds=120)
    assert not Run.objects.filter(function_id=row.pk).exists()  # a schedule change draws nothing by itself
    assert services.dispatch_due_schedules(row.next_refresh_at).queued == 1  # due at that very time
    services.set_schedule([row.pk], None)  # "off"
    row.refresh_from_db()
    assert (row.refresh_every, row.next_refresh_at) == (None, None)
    assert services.dispatch_due_schedules(timezone.now() + timedelta(days=30)).queued == 0
    created = services.create_function(expression="t", dt=1, interval=1, refresh_every=60)
    assert timezone.now() < created.next_refresh_at <= timezone.now() + timedelta(seconds=60)


def test_rows_sharing_a_period_are_spread_over_it():
    """1,000 rows every 5 minutes: about 100 per 30 s of the period, not 1,000 at :00."""
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    times = [services.first_refresh_at(pk, 300, now) for pk in range(1, 1001)]
    assert all(now < time <= now + timedelta(seconds=300) for time in times)
    buckets = Counter(int(((time - now).total_seconds() - 1) // 30) for time in times)  # (now, now + 300]
    assert len(buckets) == 10 and max(buckets.values()) <= 130, buckets
    assert max(Counter(times).values()) <= 10  # no second takes more than 1 % of them


# ----------------------------------------------------------------------------- the admin

LIST_URL = "/admin/functions/function/"


@pytest.mark.parametrize(
    ("language", "page_words", "done_words"),
    [
        ("en", ["Refresh every", "off", "minutes"], "2 functions now refresh every 5 min."),
        ("ru", ["Обновлять раз в", "выключено", "минут"], "2 функции теперь обновляются раз в 5 мин."),
    ],
)
def test_the_refresh_every_action_sets_and_clears_a_schedule(admin_client, language, page_words, done_words):
    rows = make_rows(3)
    chosen = [rows[0].pk, rows[1].pk]
    headers = {"accept-language": language}
    selection = {"action": "refresh_every", "_selected_action": chosen, "index": 0}
    page = admin_client.post(LIST_URL, selection, headers=headers).content.decode()  # the intermediate page
    for word in page_words:
        assert word in page
    assert Function.objects.filter(refresh_every__isnull=False).count() == 0  # nothing set before Apply
    apply = {"action": "refresh_every", "_selected_action": chosen, "apply": "yes"}
    answer = admin_client.post(LIST_URL, {**apply, "refresh_every_0": "5", "refresh_every_1": "60"}, headers=headers)
    assert answer.status_code == 302
    assert done_words in admin_client.get(LIST_URL, headers=headers).content.decode()
    now = timezone.now()
    for row in Function.objects.filter(pk__in=chosen):
        assert row.refresh_every == 300 and now < row.next_refresh_at <= now + timedelta(seconds=300)
    assert Function.objects.get(pk=rows[2].pk).refresh_every is None
    admin_client.post(LIST_URL, {**apply, "refresh_every_0": "5", "refresh_every_1": ""}, headers=headers)  # off
    assert not Function.objects.filter(pk__in=chosen, next_refresh_at__isnull=False).exists()


@pytest.mark.parametrize(
    ("language", "every", "behind"),
    [("en", "every 5 min", "behind by 3 min"), ("ru", "раз в 5 мин", "отстаёт на 3 мин")],
)
def test_the_list_says_when_a_row_is_behind_its_schedule(admin_client, broker, language, every, behind):
    on_time, late = scheduled(2, 300)
    Function.objects.filter(pk=late.pk).update(next_refresh_at=timezone.now() - timedelta(minutes=3, seconds=5))
    page = admin_client.get(LIST_URL, headers={"accept-language": language}).content.decode()
    assert page.count(every) == 2
    assert page.count(behind) == 1  # only the late row
    # A scheduled run waiting in the pipeline for 3 minutes is behind too (its next time is not).
    services.queue_refresh([on_time.pk], batch=False)
    Run.objects.filter(function_id=on_time.pk).update(queued_at=timezone.now() - timedelta(minutes=3, seconds=5))
    page = admin_client.get(LIST_URL, headers={"accept-language": language}).content.decode()
    assert page.count(behind) == 2


def test_a_tick_with_the_broker_down_leaves_the_runs_in_the_outbox_and_never_doubles_them(monkeypatch):
    """The broker refuses the tick's send: the runs stay queued and unsent (none failed); the next
    tick skips those rows (a queued run each); the sweep sends them once the broker is back."""
    rows = scheduled(3, 60, due_since=timedelta(seconds=1))
    pks = [row.pk for row in rows]

    def down(jobs):
        raise api.SendFailed("the message broker (test) did not take the work", [])

    monkeypatch.setattr(api, "start_refresh", down)
    assert services.dispatch_due_schedules().queued == 3
    Function.objects.filter(pk__in=pks).update(next_refresh_at=timezone.now() - timedelta(seconds=1))
    assert services.dispatch_due_schedules().skipped == 3  # still due, but each has its queued run
    runs = Run.objects.filter(function_id__in=pks)
    assert [(run.state, run.sent_at) for run in runs] == [(Run.State.QUEUED, None)] * 3
    taken = Broker()
    monkeypatch.setattr(api, "start_refresh", taken)
    Run.objects.filter(function_id__in=pks).update(queued_at=timezone.now() - timedelta(minutes=5))
    monkeypatch.setattr(api, "queued_messages", lambda: 0)
    assert services.sweep_runs().sent == 3  # the broker is back: the sweep sends the outbox
    assert sorted(taken.sent) == sorted(str(run.id) for run in runs)
    assert runs_per_row(pks) == Counter(pks)
