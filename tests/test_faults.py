"""The fault suite: the whole stack on its own PostgreSQL, Redis and RabbitMQ.

The harness starts those three on side ports (tests/sideservices.py; the
machine's shared instances are never touched), then the admin, datagen, one
export server, the three workers and beat with the same ``deploy/run`` commands
as production, and drives the admin over HTTP as a user would. Each test
injects one fault during a running batch and asserts that every row ends final
and truthful: done with its newest run's chart, or failed with the real cause.
Bounds are short here (see ENV) so that the suite stays under a few minutes.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import pytest
import redis
import requests
from kombu import Connection

from tests.sideservices import SideServices
from tests.stack import ROOT, Process, Stack, http_ok, login, wait_until

SLOT = int(os.environ.get("TEST_SLOT", "0"))
BASE = 18000 + 100 * SLOT + 60
USER, PASSWORD = "faults", "faults-pw-for-tests-1"
PRESETS = ["t + 2/t", "sin(t)", "t*t + 2/t", "cos(t / 3600)"]

# Short bounds, so faults and their outcomes fit in seconds.
ENV = {
    "DJANGO_SETTINGS_MODULE": "dashboard.settings",
    "DJANGO_DEBUG": "true",
    "DJANGO_SECRET_KEY": "faults-only-secret-key",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DJANGO_SUPERUSER_USERNAME": USER,
    "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
    "ADMIN_PORT": str(BASE + 10),
    "ADMIN_WORKERS": "1",
    "ADMIN_THREADS": "4",
    "DATAGEN_PORT": str(BASE + 11),
    "DATAGEN_URL": f"http://127.0.0.1:{BASE + 11}",
    "DATAGEN_WORKERS": "1",
    "EXPORTER_URLS": f"http://127.0.0.1:{BASE + 12}",
    "POINTS_CONCURRENCY": "2",
    "RENDER_CONCURRENCY": "2",
    "PERSIST_CONCURRENCY": "2",
    "PIPELINE_HTTP_TIMEOUT": "5",
    "PIPELINE_RETRY_BACKOFF": "1",
    "PIPELINE_RETRY_BACKOFF_MAX": "2",
    "PIPELINE_RETRY_WINDOW": "120",
    "PIPELINE_MAX_RETRIES": "200",
    "PIPELINE_SWEEP_EVERY": "2",
    "PIPELINE_SCHEDULE_EVERY": "2",
    "PIPELINE_FANOUT_OVER": "8",
    "STALLED_AFTER_SECONDS": "15",
    "RESEND_UNSENT_AFTER_SECONDS": "3",
    "ADD_WAIT_SECONDS": "10",
    "CELERY_LOG_LEVEL": "INFO",
}

pytestmark = [pytest.mark.stack]


@dataclass
class Faults:
    side: SideServices
    stack: Stack
    admin: requests.Session
    url: str

    # the database ------------------------------------------------------------

    def db(self):
        conn = psycopg2.connect(host="127.0.0.1", port=self.side.pg_port, user="postgres", dbname="postgres")
        conn.autocommit = True
        return conn

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = self.db()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def make_rows(self, count: int) -> list[int]:
        values = [(PRESETS[i % len(PRESETS)], 1 + i % 3, 1 + i % 2) for i in range(count)]
        conn = self.db()
        try:
            with conn.cursor() as cur:
                ids = []
                for expression, dt, interval in values:
                    cur.execute(
                        "INSERT INTO functions_function"
                        " (expression, dt, interval, created_at, state, error, error_code, error_params, trace)"
                        " VALUES (%s, %s, %s, now(), 'done', '', '', '{}', '{}') RETURNING id",
                        (expression, dt, interval),
                    )
                    ids.append(cur.fetchone()[0])
                return ids
        finally:
            conn.close()

    def rows(self, ids: list[int]) -> dict[int, dict]:
        found = self.query(
            "SELECT id, state, run_id, result_run, error, chart IS NOT NULL, trace FROM functions_function"
            " WHERE id = ANY(%s)",
            (ids,),
        )
        keys = ("state", "run_id", "result_run", "error", "has_chart", "trace")
        return {row[0]: dict(zip(keys, row[1:], strict=True)) for row in found}

    def settle(self, ids: list[int], timeout: float) -> dict[int, dict]:
        """Wait until every row is final with its latest run's outcome."""

        def settled():
            rows = self.rows(ids)
            final = all(r["state"] != "queued" and r["result_run"] == r["run_id"] for r in rows.values())
            return rows if final and len(rows) == len(ids) else None

        return wait_until(settled, timeout, f"{len(ids)} rows to settle", poll=0.5)

    def settle_runs(self, ids: list[int], timeout: float) -> dict[int, dict]:
        """Wait until every row has a run (the schedule queued it) and is final with its outcome."""
        wait_until(
            lambda: all(row["run_id"] for row in self.rows(ids).values()), timeout, "every row to get a run", poll=0.5
        )
        return self.settle(ids, timeout)

    # the admin over HTTP -------------------------------------------------------

    def post(self, path: str, data: dict, timeout: float = 60) -> tuple[requests.Response, float]:
        data = {**data, "csrfmiddlewaretoken": self.admin.cookies["csrftoken"]}
        started = time.monotonic()
        response = self.admin.post(self.url + path, data=data, timeout=timeout, headers={"Referer": self.url})
        return response, time.monotonic() - started

    def refresh(self, ids: list[int]) -> tuple[requests.Response, float]:
        return self.post("/admin/functions/function/", {"action": "refresh", "_selected_action": ids, "index": 0})

    def list_page(self) -> str:
        return self.admin.get(self.url + "/admin/functions/function/", timeout=30).text

    def redis(self) -> redis.Redis:
        return redis.Redis(port=self.side.redis_port, decode_responses=True, socket_timeout=2)

    def wait_for_progress(self, ids: list[int], done: int = 1, timeout: float = 60) -> None:
        """Until ``done`` rows of this refresh are stored (the batch is running)."""
        wait_until(
            lambda: (
                sum(r["state"] == "done" and r["result_run"] == r["run_id"] for r in self.rows(ids).values()) >= done
            ),
            timeout,
            "the batch to be under way",
            poll=0.1,
        )


@pytest.fixture(scope="module")
def faults() -> Iterator[Faults]:
    side = SideServices(BASE)
    stack = None
    try:
        side.start()
        env = {**os.environ, **ENV, **side.env(), "CELERY_BEAT_SCHEDULE": str(side.dir / "beat-schedule")}
        subprocess.run([str(ROOT / "deploy" / "run"), "bootstrap"], env=env, check=True, capture_output=True)
        stack = Stack(env, extra=("beat", "admin"))
        stack.start()
        url = f"http://127.0.0.1:{ENV['ADMIN_PORT']}"
        yield Faults(side, stack, login(url, USER, PASSWORD), url)
    except BaseException:
        if stack is not None:
            print(stack.logs())
        raise
    finally:
        if stack is not None:
            stack.stop()
        side.close()


def assert_all_done(rows: dict[int, dict]) -> None:
    for pk, row in rows.items():
        assert row["state"] == "done" and row["has_chart"] and not row["error"], (pk, row["error"])


# ----------------------------------------------------------------------------- infrastructure restarts


def test_rabbitmq_restarted_mid_batch_every_row_ends_done(faults):
    ids = faults.make_rows(12)
    faults.refresh(ids)
    faults.wait_for_progress(ids)
    faults.side.stop_rabbitmq()
    time.sleep(2)
    faults.side.start_rabbitmq()
    assert_all_done(faults.settle(ids, 150))


@pytest.mark.parametrize("moment", [0, 10, 30])
def test_rabbitmq_sigkilled_at_any_moment_of_a_batch_loses_no_run(faults, moment):
    """SIGKILL (nothing flushed) while the batch is being sent (0 rows done), a quarter and
    three quarters through; back 5 s later. Publisher confirms, durable queues and persistent
    messages: every row ends done, none failed for lost work."""
    ids = faults.make_rows(40)
    faults.refresh(ids)
    if moment:
        faults.wait_for_progress(ids, done=moment)
    at_kill = faults.rows(ids)
    done_at_kill = sum(row["state"] == "done" and row["result_run"] == row["run_id"] for row in at_kill.values())
    # Runs the broker had confirmed (sends >= 1) and that had not ended: it held their messages.
    held = faults.query(
        "SELECT count(*) FROM functions_run WHERE id = ANY(%s::uuid[]) AND sends >= 1 AND state <> 'done'",
        ([str(row["run_id"]) for row in at_kill.values()],),
    )[0][0]
    faults.side.kill_rabbitmq()
    time.sleep(5)  # the broker stays dead for 5 s (the fault), then comes back
    faults.side.start_rabbitmq()
    assert done_at_kill < len(ids)  # the fault was felt: runs were in flight when the broker died
    rows = faults.settle(ids, 240)
    assert_all_done(rows)
    sends = dict(
        faults.query(
            "SELECT function_id, sends FROM functions_run WHERE id = ANY(%s::uuid[])",
            ([str(row["run_id"]) for row in rows.values()],),
        )
    )
    resent = sum(n > 1 for n in sends.values())
    redelivered = sum(any(e.get("redelivered") for e in row["trace"].values()) for row in rows.values())
    print(
        f"SIGKILL at {moment} done: {done_at_kill} done and {held} confirmed but not done at the kill; "
        f"sent again: {resent}; redelivered: {redelivered}"
    )
    assert held > 0  # the kill hit messages the broker had confirmed
    if moment:  # mid-batch, messages were out with workers: the broker gave them again
        assert redelivered + resent > 0
    # At the start the kill may come before any worker took a message: they all waited in
    # the durable queue, and every row ending done with one send is the broker keeping them.


def test_the_admin_sigkilled_between_its_commit_and_its_send_loses_no_run(faults):
    """An admin whose broker never answers is killed while it sends: the runs are committed and
    unsent; the sweep (beat) sends them, and the rows keep their charts meanwhile."""
    ids = faults.make_rows(4)
    faults.refresh(ids)
    assert_all_done(faults.settle(ids, 60))  # every row has a chart to keep
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections, never says a word: the admin's send hangs
    port = BASE + 20
    broker = f"amqp://guest:guest@127.0.0.1:{silent.getsockname()[1]}//"
    env = {**faults.stack.env, "CELERY_BROKER_URL": broker, "ADMIN_PORT": str(port)}
    admin = Process("admin-silent-broker", ["admin"], env).start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(url + "/admin/login/"), 60, "the second admin")
        session = login(url, USER, PASSWORD)

        def refresh_there() -> None:
            data = {"action": "refresh", "_selected_action": ids, "index": 0}
            data["csrfmiddlewaretoken"] = session.cookies["csrftoken"]
            with contextlib.suppress(requests.RequestException):  # its admin is killed mid-request
                session.post(url + "/admin/functions/function/", data=data, headers={"Referer": url}, timeout=60)

        sender = threading.Thread(target=refresh_there, daemon=True)
        sender.start()
        committed = "SELECT count(*) FROM functions_run WHERE function_id = ANY(%s) AND state = 'queued'"
        wait_until(lambda: faults.query(committed, (ids,)) == [(4,)], 30, "the refresh to commit", poll=0.05)
        admin.kill()  # SIGKILL while it waits for the broker: committed, never sent
    finally:
        admin.kill()
        silent.close()
    unsent = faults.query(
        "SELECT count(*) FROM functions_run WHERE function_id = ANY(%s) AND state = 'queued' AND sent_at IS NULL",
        (ids,),
    )
    assert unsent == [(4,)]  # the fault was felt: nothing was sent
    assert all(row["has_chart"] for row in faults.rows(ids).values())  # the charts stay meanwhile
    assert_all_done(faults.settle(ids, 60))


def test_redis_restarted_mid_batch_every_row_ends_done_and_every_key_expires(faults):
    ids = faults.make_rows(16)
    faults.refresh(ids)
    faults.wait_for_progress(ids)
    faults.side.stop_redis()
    time.sleep(2)
    faults.side.start_redis()
    assert_all_done(faults.settle(ids, 120))
    faults.refresh(ids[:2])  # and a batch after the restart
    assert_all_done(faults.settle(ids[:2], 60))
    r = faults.redis()
    keys = list(r.scan_iter("*"))
    assert keys
    assert {key: r.ttl(key) for key in keys if r.ttl(key) < 0} == {}  # every key expires


def test_postgresql_restarted_mid_batch_no_finished_chart_is_thrown_away(faults):
    ids = faults.make_rows(12)
    faults.refresh(ids)
    faults.wait_for_progress(ids)
    faults.side.stop_postgres()
    time.sleep(8)  # longer than the old persist retries lasted (~6 s)
    faults.side.start_postgres()
    rows = faults.settle(ids, 150)
    assert_all_done(rows)
    assert max(row["trace"]["persist"]["attempts"] for row in rows.values()) > 1  # persist did wait it out


# ----------------------------------------------------------------------------- sending


def test_refresh_and_add_answer_at_once_while_redis_is_down_and_the_status_catches_up(faults):
    ids = faults.make_rows(4)
    faults.side.stop_redis()
    try:
        response, seconds = faults.refresh(ids)
        assert response.status_code == 200 and "4 functions queued for refresh" in response.text
        assert seconds < 3, seconds
        add = {"preset": "t + 2/t", "expression": "", "dt": 1, "interval": 1, "_save": "Save"}
        response, seconds = faults.post("/admin/functions/function/add/", add)
        assert response.status_code == 200, response.text[:2000]
        assert seconds < 10, seconds  # the chart itself is made while Redis is down
        assert_all_done(faults.settle(ids, 60))
    finally:
        faults.side.start_redis()
    (added,) = faults.query("SELECT id FROM functions_function ORDER BY id DESC LIMIT 1")
    assert_all_done(faults.settle([added[0]], 30))
    # Redis back: the next refresh's status and batch show again.
    faults.refresh(ids)
    faults.settle(ids, 60)
    assert re.search(r"4 done, 0 failed of 4", faults.list_page())


def test_refresh_while_the_broker_is_down_answers_at_once_and_the_rows_go_when_it_is_back(faults):
    ids = faults.make_rows(3)
    faults.side.stop_rabbitmq()
    try:
        response, seconds = faults.refresh(ids)
        assert response.status_code == 200, response.text[:2000]
        assert seconds < 10, seconds
        unsent = faults.query(
            "SELECT count(*) FROM functions_run WHERE function_id = ANY(%s) AND sent_at IS NULL", (ids,)
        )
        assert unsent == [(3,)]  # the broker did not take them: queued, unsent, not failed
        assert {row["state"] for row in faults.rows(ids).values()} == {"queued"}
    finally:
        faults.side.start_rabbitmq()
    # The broker is back: the sweep (beat) sends them, nobody presses Refresh again.
    assert_all_done(faults.settle(ids, 90))


# ----------------------------------------------------------------------------- processes killed


def test_datagen_and_the_export_server_killed_mid_batch_every_row_ends_done(faults):
    ids = faults.make_rows(10)
    faults.refresh(ids)
    faults.wait_for_progress(ids)
    faults.stack.datagen.kill()
    for exporter in faults.stack.exporters:
        exporter.kill()
    time.sleep(3)
    faults.stack.restart(faults.stack.datagen, ENV["DATAGEN_URL"] + "/health")
    for exporter, url in zip(faults.stack.exporters, faults.stack.exporter_urls, strict=True):
        faults.stack.restart(exporter, url + "/health")
    assert_all_done(faults.settle(ids, 120))


@pytest.mark.parametrize("queue", ["points", "persist"])
def test_a_worker_killed_mid_batch_loses_nothing(faults, queue):
    ids = faults.make_rows(10)
    faults.refresh(ids)
    faults.wait_for_progress(ids)
    faults.stack.workers[queue].kill()
    time.sleep(1)
    faults.stack.restart_worker(queue)
    assert_all_done(faults.settle(ids, 120))


def test_a_deep_queue_is_not_mistaken_for_lost_work(faults):
    """Rows waiting in a queue longer than STALLED_AFTER_SECONDS are left alone by the sweep."""
    faults.stack.workers["points"].stop()
    ids = faults.make_rows(5)
    faults.refresh(ids)
    time.sleep(float(ENV["STALLED_AFTER_SECONDS"]) + 3 * float(ENV["PIPELINE_SWEEP_EVERY"]))
    assert {row["state"] for row in faults.rows(ids).values()} == {"queued"}  # waiting, not failed
    faults.stack.restart_worker("points")
    assert_all_done(faults.settle(ids, 60))


def test_work_really_lost_is_sent_again_by_the_beat_sweep(faults):
    """A run sent (so PostgreSQL says) whose message is gone: the sweep, run by beat, sends it again."""
    (pk,) = faults.make_rows(1)
    faults.query(
        "WITH run AS (INSERT INTO functions_run"
        " (id, function_id, expression, dt, interval, queued_at, sent_at, sends, state)"
        " SELECT gen_random_uuid(), id, expression, dt, interval, now() - interval '1 hour',"
        " now() - interval '1 hour', 1, 'queued' FROM functions_function WHERE id = %s RETURNING id)"
        " UPDATE functions_function SET state = 'queued', run_id = (SELECT id FROM run) WHERE id = %s",
        (pk, pk),
    )
    rows = faults.settle([pk], float(ENV["STALLED_AFTER_SECONDS"]) + 40)
    assert_all_done(rows)
    assert faults.query("SELECT sends FROM functions_run WHERE id = %s", (rows[pk]["run_id"],)) == [(2,)]


def test_a_message_that_kills_its_worker_is_parked_and_the_row_failed_with_the_reason(faults):
    (pk,) = faults.make_rows(1)
    render = faults.stack.workers["render"]
    exporter = faults.stack.exporters[0]
    exporter.signal_group(signal.SIGSTOP)  # the render hangs: time to kill its worker mid-task
    try:
        faults.refresh([pk])
        run = faults.rows([pk])[pk]["run_id"]
        counter = f"fd:started:{run}.render:0"  # starts of the render message that never finished
        for delivery in range(1, 4):
            wait_until(lambda d=delivery: int(faults.redis().get(counter) or 0) >= d, 30, f"delivery {delivery}")
            children = subprocess.run(["pgrep", "-P", str(render.popen.pid)], capture_output=True, text=True)
            for child in children.stdout.split():
                os.kill(int(child), signal.SIGKILL)  # the pool process dies, as an out-of-memory kill would
    finally:
        exporter.signal_group(signal.SIGCONT)
    rows = faults.settle([pk], 60)
    assert rows[pk]["state"] == "failed"
    assert "3 earlier starts" in rows[pk]["error"] and "parked" in rows[pk]["error"], rows[pk]["error"]
    with Connection(faults.stack.env["CELERY_BROKER_URL"]) as connection:
        parked = connection.default_channel.basic_get("parked", no_ack=True)
    assert parked is not None and str(run) in str(parked.body)  # a copy is kept for people to look at
    assert render.running  # the worker itself survived and serves the next rows
    ids = faults.make_rows(2)
    faults.refresh(ids)
    assert_all_done(faults.settle(ids, 60))


def test_every_log_line_of_a_run_carries_its_run_id(faults):
    ids = faults.make_rows(1)
    faults.refresh(ids)
    run = str(faults.settle(ids, 60)[ids[0]]["run_id"])

    def lines() -> list[str]:
        return [
            line
            for worker in faults.stack.workers.values()
            for line in worker.log_path.read_text(errors="replace").splitlines()
            if run in line
        ]

    # Celery's own lines (received, succeeded) name the task, whose id is the run id and the stage.
    # A stage sends the next one's message before it logs its own success, so persist may store the
    # row before render's "succeeded" line is written: waited for, briefly.
    for stage in ("points", "render", "persist"):
        wait_until(
            lambda stage=stage: any(f"{run}.{stage}" in line and "succeeded" in line for line in lines()), 10, stage
        )


# ----------------------------------------------------------------------------- the refresh schedule


def schedule_due(faults: Faults, ids: list[int], every: int, late: str) -> None:
    """Give rows a schedule whose next time is ``late`` ago (as that much downtime would leave it)."""
    faults.query(
        "UPDATE functions_function SET refresh_every = %s, next_refresh_at = now() - %s::interval WHERE id = ANY(%s)",
        (every, late, ids),
    )


def runs_per_row(faults: Faults, ids: list[int]) -> dict[int, int]:
    found = dict(
        faults.query("SELECT function_id, count(*) FROM functions_run WHERE function_id = ANY(%s) GROUP BY 1", (ids,))
    )
    return {pk: found.get(pk, 0) for pk in ids}


def beat_ticks(beat: Process) -> int:
    return beat.log_path.read_text(errors="replace").count("Sending due task dispatch-schedules")


def wait_for_ticks(beat: Process, count: int, timeout: float = 30) -> None:
    """Until ``beat`` sent ``count`` more schedule ticks (each one ran on a due-row set that must stay empty)."""
    target = beat_ticks(beat) + count
    wait_until(lambda: beat_ticks(beat) >= target, timeout, f"{count} more schedule ticks", poll=0.2)


def test_beat_down_ten_minutes_then_back_refreshes_every_due_row_exactly_once(faults):
    beat = faults.stack.extra["beat"]
    beat.stop()
    try:
        ids = faults.make_rows(12)
        schedule_due(faults, ids, 300, "10 minutes")  # two periods missed while beat was down
        before = dict(faults.query("SELECT id, next_refresh_at FROM functions_function WHERE id = ANY(%s)", (ids,)))
    finally:
        beat.start()
    assert_all_done(faults.settle_runs(ids, 90))
    wait_for_ticks(beat, 3)  # later ticks send nothing more: the missed ticks coalesced
    assert runs_per_row(faults, ids) == {pk: 1 for pk in ids}
    after = dict(faults.query("SELECT id, next_refresh_at FROM functions_function WHERE id = ANY(%s)", (ids,)))
    for pk in ids:  # on the row's own grid: three periods on from where it was
        assert (after[pk] - before[pk]).total_seconds() == 900, (pk, before[pk], after[pk])


def test_two_beats_running_by_mistake_send_no_row_twice(faults):
    second = Process(
        "beat-second", ["beat"], {**faults.stack.env, "CELERY_BEAT_SCHEDULE": str(faults.side.dir / "beat-2")}
    )
    second.start()
    try:
        wait_for_ticks(second, 1)
        ids = faults.make_rows(40)
        schedule_due(faults, ids, 300, "1 second")
        assert_all_done(faults.settle_runs(ids, 120))
        wait_for_ticks(second, 3)
        wait_for_ticks(faults.stack.extra["beat"], 1)
    finally:
        second.stop()
    assert runs_per_row(faults, ids) == {pk: 1 for pk in ids}


def test_a_row_edited_while_its_scheduled_run_is_in_flight_draws_the_edit(faults):
    faults.stack.workers["points"].stop()  # the scheduled run waits in the points queue
    try:
        (pk,) = faults.make_rows(1)
        schedule_due(faults, [pk], 300, "1 second")
        wait_until(lambda: runs_per_row(faults, [pk])[pk] == 1, 30, "the scheduled run to be queued")
        edit = {
            "preset": "__custom__",
            "expression": "t + 7",
            "dt": "1",
            "interval": "1",
            "refresh_every_0": "5",
            "refresh_every_1": "60",
            "_save": "Save",
        }
        response, _ = faults.post(f"/admin/functions/function/{pk}/change/", edit)
        assert response.status_code == 200 and "errornote" not in response.text, response.text[:2000]
    finally:
        faults.stack.restart_worker("points")
    rows = faults.settle([pk], 60)
    assert_all_done(rows)
    assert rows[pk]["trace"]["render"]["drawn"]["expression"] == "t + 7"  # the newest run won
    states = dict(faults.query("SELECT state, count(*) FROM functions_run WHERE function_id = %s GROUP BY 1", (pk,)))
    assert states == {"superseded": 1, "done": 1}


def test_rows_due_while_the_broker_is_down_wait_and_go_once_it_is_back(faults):
    ids = faults.make_rows(4)
    faults.side.stop_rabbitmq()
    try:
        schedule_due(faults, ids, 300, "1 second")
        # The persist worker's sweep and the schedule tick cannot arrive; let the sweep's time pass.
        wait_until(
            lambda: (
                faults.query(
                    "SELECT now() - min(next_refresh_at) > interval '6 seconds' FROM functions_function"
                    " WHERE id = ANY(%s)",
                    (ids,),
                )
                == [(True,)]
            ),
            30,
            "the rows to be overdue",
        )
        failed = faults.query(
            "SELECT count(*) FROM functions_run WHERE function_id = ANY(%s) AND state = 'failed'", (ids,)
        )
        assert failed == [(0,)]
        assert {row["state"] for row in faults.rows(ids).values()} == {"done"}  # still due, not failed
    finally:
        faults.side.start_rabbitmq()
    assert_all_done(faults.settle_runs(ids, 90))
    wait_for_ticks(faults.stack.extra["beat"], 2, timeout=60)
    assert runs_per_row(faults, ids) == {pk: 1 for pk in ids}
