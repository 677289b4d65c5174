"""Logs that follow one run, on real services (README, "Operating it", "Logs").

A PostgreSQL, Redis and RabbitMQ of their own on side ports; the admin, beat, datagen, two
export servers and the three workers started by ``deploy/run`` with ``LOG_DIR`` set, as
``make dev`` starts them, so each writes its lines to ``LOG_DIR/<service>.log``. A batch of
N rows of which one fails is refreshed through the admin: every Python service writes only
JSON lines, and each run's id is on lines of the points, render and persist workers, datagen
and the export server (the failed run's: no export). A hostile ``X-Run-Id`` never reaches a
log. The processors themselves are unit-tested at the end.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
import requests
import structlog

from pipeline import logs
from tests.sideservices import SideServices
from tests.stack import ROOT, Stack, login, wait_until

SLOT = int(os.environ.get("TEST_SLOT", "0"))
# Outside the slot's 18000 + 100 * SLOT range that the other stack tests share.
BASE = 28000 + 100 * SLOT
USER, PASSWORD = "logs", "logs-pw-for-tests-1"
PYTHON_SERVICES = ("admin", "beat", "datagen", "worker-points", "worker-render", "worker-persist")

ENV = {
    "DJANGO_SETTINGS_MODULE": "dashboard.settings",
    "DJANGO_DEBUG": "true",
    "DJANGO_SECRET_KEY": "logs-only-secret-key",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DJANGO_SUPERUSER_USERNAME": USER,
    "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
    "ADMIN_PORT": str(BASE + 10),
    "ADMIN_WORKERS": "2",
    "ADMIN_THREADS": "4",
    "DATAGEN_PORT": str(BASE + 11),
    "DATAGEN_URL": f"http://127.0.0.1:{BASE + 11}",
    "DATAGEN_WORKERS": "2",
    "EXPORTER_URLS": f"http://127.0.0.1:{BASE + 12},http://127.0.0.1:{BASE + 13}",
    "POINTS_CONCURRENCY": "2",
    "RENDER_CONCURRENCY": "2",
    "PERSIST_CONCURRENCY": "2",
    "PIPELINE_HTTP_TIMEOUT": "10",
    "CELERY_LOG_LEVEL": "INFO",
    "LOG_LEVEL": "INFO",
    "DATAGEN_LOG_LEVEL": "INFO",
    "LOG_FORMAT": "json",
    "DATAGEN_LOG_FORMAT": "json",
}
for _name in ("LOG_SERVICE", "METRICS_PORT"):  # each process names itself (deploy/run)
    ENV[_name] = ""

pytestmark = [pytest.mark.stack]


@dataclass
class Logged:
    side: SideServices
    stack: Stack
    admin: requests.Session
    url: str
    log_dir: Path

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = psycopg2.connect(host="127.0.0.1", port=self.side.pg_port, user="postgres", dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def files(self) -> dict[str, Path]:
        return {path.stem: path for path in sorted(self.log_dir.glob("*.log"))}

    def lines(self, service: str) -> list[str]:
        return [line for line in self.files()[service].read_text(errors="replace").splitlines() if line.strip()]

    def records(self, service: str) -> list[dict]:
        """The JSON lines of ``service``'s log (other lines left out)."""
        found = []
        for line in self.lines(service):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                found.append(record)
        return found

    def run_records(self, run_id: str) -> dict[str, list[dict]]:
        """Every line of run ``run_id``, by the log file it is in."""
        return {
            service: [record for record in self.records(service) if record.get("run_id") == run_id]
            for service in self.files()
        }


@pytest.fixture(scope="module")
def logged() -> Iterator[Logged]:
    side = SideServices(BASE)
    stack = None
    try:
        side.start()
        log_dir = side.dir / "var" / "log"  # as make dev's (the README's commands run in side.dir)
        env = {**os.environ, **ENV, **side.env(), "LOG_DIR": str(log_dir)}
        boot = subprocess.run([str(ROOT / "deploy" / "run"), "bootstrap"], env=env, capture_output=True, text=True)
        assert boot.returncode == 0, boot.stdout[-3000:] + boot.stderr[-3000:]
        stack = Stack(env, extra=("admin", "beat"))
        stack.start()
        url = f"http://127.0.0.1:{ENV['ADMIN_PORT']}"
        yield Logged(side, stack, login(url, USER, PASSWORD), url, log_dir)
    except BaseException:
        if stack is not None:
            print(stack.logs())
        raise
    finally:
        if stack is not None:
            stack.stop()
        side.close()


def make_rows(logged: Logged, expressions: list[str]) -> list[int]:
    ids = []
    for expression in expressions:
        (row,) = logged.query(
            "INSERT INTO functions_function"
            " (expression, dt, interval, created_at, state, error, error_code, error_params, trace)"
            " VALUES (%s, 1, 1, now(), 'done', '', '', '{}', '{}') RETURNING id",
            (expression,),
        )
        ids.append(row[0])
    return ids


def refresh_and_settle(logged: Logged, ids: list[int]) -> dict[int, tuple[str, str, str | None]]:
    """Refresh ``ids`` through the admin's action; wait for their runs' outcomes: (state, run id, batch id)."""
    response = logged.admin.post(
        logged.url + "/admin/functions/function/",
        data={
            "action": "refresh",
            "_selected_action": ids,
            "index": 0,
            "csrfmiddlewaretoken": logged.admin.cookies["csrftoken"],
        },
        headers={"Referer": logged.url},
        timeout=60,
    )
    assert response.ok, response.text[:500]

    def settled() -> dict[int, tuple[str, str, str | None]] | None:
        rows = logged.query(
            "SELECT f.id, r.state, r.id::text, r.batch_id::text FROM functions_function f"
            " JOIN functions_run r ON r.id = f.run_id WHERE f.id = ANY(%s)",
            (ids,),
        )
        final = len(rows) == len(ids) and all(state != "queued" for _, state, _, _ in rows)
        return {pk: (state, run, batch) for pk, state, run, batch in rows} if final else None

    return wait_until(settled, 120, f"{len(ids)} runs to finish", poll=0.5)


N = 4


def test_one_run_is_followed_through_every_service(logged):
    ids = make_rows(logged, ["1/(t - t)"] + ["sin(t)", "t + 2/t", "cos(t / 3600)"][: N - 1])
    runs = refresh_and_settle(logged, ids)
    assert sorted(state for state, _, _ in runs.values()) == ["done"] * (N - 1) + ["failed"]
    failed_row = ids[0]

    def every_run_logged_everywhere() -> bool:
        for pk, (state, run, _) in runs.items():
            found = logged.run_records(run)
            expected = ["worker-points", "worker-persist", "datagen"]
            if state == "done":
                expected += ["worker-render"]
                if not (found.get("exporter-" + str(BASE + 12)) or found.get("exporter-" + str(BASE + 13))):
                    raise AssertionError(f"run {run} of row {pk}: no export server line")
            missing = [service for service in expected if not found.get(service)]
            if missing:
                raise AssertionError(f"run {run} of row {pk} ({state}): no line from {missing}")
        return True

    wait_until(every_run_logged_everywhere, 20, "every run's lines in every service's log")

    for pk, (state, run, batch) in runs.items():
        found = logged.run_records(run)
        # Each worker's lines of the run carry the row, the batch, the stage and the task id.
        for stage in ("points", "render", "persist") if state == "done" else ("points", "persist"):
            lines = found[f"worker-{stage}"]
            assert all(r["stage"] == stage and r["row_id"] == pk and r["batch_id"] == batch for r in lines), lines
            assert all(r["task_id"].startswith(run) and r["service"] == f"worker-{stage}" for r in lines), lines
        ended = {r["stage"]: r for r in found["worker-points"] + found["worker-render"] if r["event"] == "stage ended"}
        assert ended["points"]["outcome"] == ("done" if state == "done" else "failed"), ended
        # datagen's request line of the run: its status, method, path and duration.
        (request,) = [r for r in found["datagen"] if r["event"] == "request"]
        assert request["method"] == "POST" and request["path"] == "/api/v1/points", request
        assert request["status"] == (200 if state == "done" else 422) and request["duration_ms"] >= 0, request
        exports = [r for name, lines in found.items() if name.startswith("exporter-") for r in lines]
        if pk == failed_row:
            assert exports == [] and "render" not in ended, (exports, ended)
        else:
            assert [(r["event"], r["status"]) for r in exports] == [("export", 200)], exports

    # The figures for the note: one run's lines per service, and the README's commands pulling them.
    done_row = ids[1]
    done_run = runs[done_row][1]
    counts = {name: len(lines) for name, lines in logged.run_records(done_run).items() if lines}
    print(f"\nlines of run {done_run} (row {done_row}) per service: {json.dumps(counts)}")
    found_run = readme_command(logged, RUN_OF_ROW.replace("42", str(done_row)))
    assert found_run.strip() == done_run
    pulled = readme_command(logged, f"run={done_run}\n{PULL_RUN}")
    pulled_lines = [json.loads(line) for line in pulled.splitlines()]
    assert len(pulled_lines) == sum(counts.values()), (counts, pulled)
    assert {r["service"] for r in pulled_lines} == set(counts), pulled
    assert [r["timestamp"] for r in pulled_lines] == sorted(r["timestamp"] for r in pulled_lines)
    print(pulled)


# The README's commands ("Logs"), run here as written, in a directory whose var/log is the stack's LOG_DIR.
RUN_OF_ROW = (
    "jq -rR 'fromjson? | select(.row_id == 42 and .stage == \"persist\") | .run_id' var/log/worker-persist.log"
    " | tail -n 1"
)
PULL_RUN = (
    'cat var/log/*.log | jq -cnR --arg run "$run"'
    " '[inputs | fromjson? | select(.run_id == $run)] | sort_by(.timestamp)[]'"
)


def readme_command(logged: Logged, command: str) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command], cwd=logged.log_dir.parent.parent, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_readme_shows_these_commands():
    readme = (ROOT / "README.md").read_text()
    assert RUN_OF_ROW in readme and PULL_RUN in readme


def test_every_python_service_writes_only_json_lines(logged):
    files = logged.files()
    assert set(PYTHON_SERVICES) <= set(files), sorted(files)
    counts = {}
    for service in PYTHON_SERVICES:
        lines = logged.lines(service)
        not_json = [line for line in lines if not line.startswith("{") or not isinstance(json.loads(line), dict)]
        assert lines and not not_json, (service, not_json[:5])
        records = [json.loads(line) for line in lines]
        assert all({"timestamp", "level", "event", "service"} <= set(r) for r in records), (service, records[:3])
        assert {r["service"] for r in records} == {service}, service
        counts[service] = len(lines)
    # gunicorn's own records (the master's start, the admin's access lines) and Celery's are among them.
    admin = logged.records("admin")
    assert any(r["logger"] == "gunicorn.error" and "Listening at" in r["event"] for r in admin)
    assert any(r["logger"] == "gunicorn.access" and "POST /admin/functions/function/" in r["event"] for r in admin)
    assert any(r["logger"] == "celery.beat" for r in logged.records("beat"))
    points = logged.records("worker-points")
    assert any(r["logger"].startswith("celery.") and "ready" in r["event"] for r in points), {
        r["logger"] for r in points
    }
    print(f"\nlines per service: {json.dumps(counts)}")


HOSTILE = [
    "x" * 65,  # too long
    "run id with spaces",
    "abc;rm -rf",
    '"},{"level":"critical',
    "<script>alert(1)</script>",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_run_id_never_reaches_a_log(logged, hostile):
    datagen = logged.stack.env["DATAGEN_URL"] + "/api/v1/points"
    exporter = logged.stack.exporter_urls[0] + "/"
    marker = f"good-{abs(hash(hostile)) % 10**8}"
    for run_id in (hostile, marker):
        headers = {logs.RUN_ID_HEADER: run_id}
        answer = requests.post(
            datagen, json={"expression": "sin(t)", "interval": 1, "dt": 1, "width": 100}, headers=headers, timeout=10
        )
        assert answer.status_code == 200
        answer = requests.post(exporter, json={"infile": {"series": [{"data": [1, 2]}]}}, headers=headers, timeout=30)
        assert answer.status_code == 200
    exporter_log = "exporter-" + logged.stack.exporter_urls[0].rsplit(":", 1)[1]

    def both_logged() -> bool:
        return all(any(r.get("run_id") == marker for r in logged.records(name)) for name in ("datagen", exporter_log))

    wait_until(both_logged, 10, "the valid run id's lines")
    for name in ("datagen", exporter_log):
        text = logged.files()[name].read_text(errors="replace")
        assert hostile not in text and json.dumps(hostile)[1:-1] not in text, name
        # Its request was logged all the same, without a run id.
        requests_lines = [r for r in logged.records(name) if r["event"] in ("request", "export")]
        assert any("run_id" not in r for r in requests_lines), name


def test_datagen_writes_the_request_line_of_errors_too(logged):
    datagen = logged.stack.env["DATAGEN_URL"]
    headers = {logs.RUN_ID_HEADER: "errors-run-1"}
    statuses = {
        requests.post(
            datagen + "/api/v1/points",
            data="{not json",
            headers={**headers, "Content-Type": "application/json"},
            timeout=10,
        ).status_code,
        requests.post(datagen + "/api/v1/points", json={"expression": "t +"}, headers=headers, timeout=10).status_code,
        requests.get(datagen + "/no/such/path", headers=headers, timeout=10).status_code,
        requests.post(
            datagen + "/api/v1/points",
            json={"expression": "1/(t-t)", "interval": 1, "dt": 1},
            headers=headers,
            timeout=10,
        ).status_code,
    }
    assert statuses == {400, 404, 422}, statuses

    def four_lines() -> list[dict]:
        lines = [r for r in logged.records("datagen") if r.get("run_id") == "errors-run-1" and r["event"] == "request"]
        return lines if len(lines) == 4 else []

    lines = wait_until(four_lines, 10, "datagen's four request lines")
    assert Counter(r["status"] for r in lines) == Counter({400: 2, 404: 1, 422: 1}), lines


# ----------------------------------------------------------------------------- the processors


def formatted(fmt: str, record: logging.LogRecord, service: str = "worker-points") -> str:
    return logs.formatter(fmt, service).format(record)


def record(message: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("celery.app.trace", logging.INFO, __file__, 1, message, args, exc_info)


def test_a_standard_library_record_becomes_one_json_line_with_the_tasks_context():
    job = {"run_id": "1b2c-run", "function_id": 7, "batch_id": "b-1", "expression": "sin(t)"}
    logs.bind_task("points", "1b2c-run.points", (job,))
    try:
        line = formatted("json", record("Task %s succeeded in %ss", "pipeline.generate_points[1b2c-run.points]", 0.1))
    finally:
        logs.unbind_task()
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["event"] == "Task pipeline.generate_points[1b2c-run.points] succeeded in 0.1s"
    assert parsed["level"] == "info" and parsed["logger"] == "celery.app.trace"
    assert parsed["service"] == "worker-points" and parsed["timestamp"].endswith("Z")
    assert {k: parsed[k] for k in logs.TASK_KEYS} == {
        "run_id": "1b2c-run",
        "row_id": 7,
        "batch_id": "b-1",
        "stage": "points",
        "task_id": "1b2c-run.points",
    }
    # Cleared at the task's end: the next line of the process carries no run.
    assert "run_id" not in json.loads(formatted("json", record("idle")))


def test_a_task_without_a_job_binds_its_stage_only():
    assert logs.task_context("sweep", "abc", ()) == {"stage": "sweep", "task_id": "abc"}
    assert logs.task_context("send", "r.send", ([{"run_id": "r"}],)) == {"stage": "send", "task_id": "r.send"}


def test_a_traceback_stays_on_the_same_json_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        line = formatted("json", record("failed", exc_info=sys.exc_info()))
    parsed = json.loads(line)
    assert "\n" not in line and "ValueError: boom" in parsed["exception"]


def test_the_console_format_is_text_and_an_unknown_format_is_refused():
    text = formatted("console", record("hello %s", "there"))
    assert "hello there" in text and not text.startswith("{")
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logs.logging_config("INFO", "xml")


def test_structlogs_own_events_take_the_same_path():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure(logs.logging_config("INFO", "json", "unit"))
        root.handlers[0].setStream(stream)
        structlog.contextvars.bind_contextvars(run_id="r-1")
        structlog.get_logger("unit").info("stage ended", outcome="done", seconds=0.5)
    finally:
        structlog.contextvars.clear_contextvars()
        root.handlers, _ = saved
        root.setLevel(saved[1])
        structlog.reset_defaults()
    parsed = json.loads(stream.getvalue().strip())
    assert parsed == {**parsed, "event": "stage ended", "outcome": "done", "run_id": "r-1", "service": "unit"}


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("0b5e7c1e-6f0c-4b43-9d1a-1f2e3d4c5b6a", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("", False),
        ("a b", False),
        ("a\nb", False),
        ("ünï", False),
        (None, False),
    ],
)
def test_only_a_run_id_is_taken_from_a_header(value, valid):
    assert logs.valid_run_id(value) == (value if valid else None)
