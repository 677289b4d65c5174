"""Pure functions of the pipeline: chart options, export server targets."""

import math

import pytest

from pipeline.charts import chart_options
from pipeline.errors import StageFailure


def test_datetime_axis_in_milliseconds_and_the_function_as_title():
    options = chart_options("t + 2/t", [[1_700_000_000.0, 1.0], [1_700_003_600.0, 2.5]], 1, 1)
    assert options["xAxis"]["type"] == "datetime"
    assert options["title"]["text"] == "y = t + 2/t"
    assert options["series"][0]["data"] == [[1_700_000_000_000.0, 1.0], [1_700_003_600_000.0, 2.5]]


@pytest.mark.parametrize(
    "points",
    [[], [[1.0]], [[1.0, math.nan]], [[1.0, math.inf]], [["1", 2.0]], [None]],
)
def test_anything_but_finite_pairs_is_refused(points):
    with pytest.raises(StageFailure):
        chart_options("t", points, 1, 1)


def test_every_address_of_a_scaled_export_server_name_is_a_target(monkeypatch):
    from pipeline import tasks

    assert tasks.exporter_targets(["http://127.0.0.1:7801", "http://localhost:7802"]) == [
        "http://127.0.0.1:7801",
        "http://localhost:7802",
    ]
    assert tasks.exporter_targets(["http://no-such-host.invalid:7801"]) == ["http://no-such-host.invalid:7801"]

    # A compose service scaled to three replicas: its name answers three addresses.
    replicas = [(2, 1, 6, "", (ip, 7801)) for ip in ("172.18.0.7", "172.18.0.5", "172.18.0.6")]
    monkeypatch.setattr(tasks.socket, "getaddrinfo", lambda *args, **kwargs: replicas)
    assert tasks.exporter_targets(["http://exporter:7801"]) == [
        "http://172.18.0.5:7801",
        "http://172.18.0.6:7801",
        "http://172.18.0.7:7801",
    ]


def test_concurrent_renders_of_one_process_spread_over_the_export_servers(monkeypatch):
    from contextlib import ExitStack

    from pipeline import settings, tasks

    monkeypatch.setattr(settings, "EXPORTER_URLS", ["http://127.0.0.1:7801", "http://127.0.0.1:7802"])
    with ExitStack() as leases:
        held = [leases.enter_context(tasks.exporter_lease("render@host", 0)) for _ in range(4)]
        assert sorted(held) == ["http://127.0.0.1:7801"] * 2 + ["http://127.0.0.1:7802"] * 2
    assert not +tasks._in_flight  # every lease was given back
    with tasks.exporter_lease("render@host", 0) as first:
        pass
    with tasks.exporter_lease("render@host", 1) as retry:
        pass
    assert retry != first  # a retry moves on to the next export server


def test_a_retry_avoids_the_export_servers_it_failed_at_in_any_process(monkeypatch):
    from pipeline import settings, tasks

    urls = ["http://127.0.0.1:7801", "http://127.0.0.1:7802", "http://127.0.0.1:7803"]
    monkeypatch.setattr(settings, "EXPORTER_URLS", urls)
    for index in range(4):  # whichever pool process (its index) and worker takes the retry
        monkeypatch.setattr(tasks, "current_process", lambda index=index: type("P", (), {"index": index})())
        for worker in ("render@a", "render@b"):
            for attempt in range(4):
                with tasks.exporter_lease(worker, attempt, [urls[0]]) as url:
                    assert url != urls[0]
                with tasks.exporter_lease(worker, attempt, urls[:2]) as url:
                    assert url == urls[2]
                with tasks.exporter_lease(worker, attempt, urls) as url:  # every one failed: any will do
                    assert url in urls
    assert not +tasks._in_flight


def test_one_retry_policy_retries_within_the_window_then_gives_up(monkeypatch):
    import time

    from pipeline import settings, tasks
    from pipeline.celery import FIRST_FAILURE_HEADER, StageTask

    for task in (tasks.generate_points, tasks.render_chart):
        assert isinstance(task, StageTask) and task.retry_jitter and task.retry_backoff
    monkeypatch.setattr(settings, "RETRY_WINDOW", 120.0)
    task = tasks.render_chart
    cases = [
        (0, None, True),
        (7, time.time() - 100, True),
        (7, time.time() - 121, False),
        (task.max_retries, None, False),
    ]
    for retries, first_failure, allowed in cases:
        headers = {FIRST_FAILURE_HEADER: first_failure} if first_failure else {}
        task.push_request(retries=retries, headers=headers)
        try:
            assert task.may_retry() is allowed, (retries, first_failure)
        finally:
            task.pop_request()


def test_a_transient_failure_past_the_window_ends_as_the_rows_error_with_its_cause(monkeypatch):
    import time

    from pipeline import jobs, status, tasks
    from pipeline.celery import FIRST_FAILURE_HEADER
    from pipeline.errors import TransientFailure

    monkeypatch.setattr(status, "begin", lambda *args: status.Begin(superseded=False, deaths=0))
    monkeypatch.setattr(status, "note", lambda *args: None)

    def export_server_down(job):
        raise TransientFailure("export server at http://127.0.0.1:7801 is unreachable")

    job = jobs.new_job(1, "run-1", "t", 1.0, 1.0)
    task = tasks.render_chart
    task.push_request(retries=0, headers={})
    try:
        with pytest.raises(TransientFailure):  # within the window: Celery's autoretry takes it
            tasks.run_stage(task, "render", job, export_server_down)
    finally:
        task.pop_request()
    task.push_request(retries=9, headers={FIRST_FAILURE_HEADER: time.time() - 200}, hostname="render@test")
    try:
        failed = tasks.run_stage(task, "render", job, export_server_down)
    finally:
        task.pop_request()
    assert failed["error"].startswith('Stage "render" failed: export server at http://127.0.0.1:7801 is unreachable')
    assert "gave up after 10 attempts in 200 s" in failed["error"]
    assert failed["trace"]["render"]["attempts"] == 10


def _m4_columns(samples, width):
    """M4 of a zigzag series (y alternates -1, 1 with a slow drift) the way datagen picks it."""
    step = 60.0
    ys = [(-1.0 if i % 2 else 1.0) + i / samples for i in range(samples)]
    columns = {}
    for i in range(samples):
        b = min(width - 1, i * width // (samples - 1))
        columns.setdefault(b, []).append(i)
    points = []
    for col in columns.values():
        i_min = min(col, key=lambda i: (ys[i], i))
        i_max = max(col, key=lambda i: (ys[i], -i))
        points += [[1_700_000_000.0 + i * step, ys[i]] for i in sorted({col[0], i_min, i_max, col[-1]})]
    return points, columns, ys


def test_a_dense_series_is_drawn_over_its_per_column_band():
    from pipeline.charts import MARGIN_LEFT, MARGIN_RIGHT, SERIES_COLOR

    width = 50
    points, columns, ys = _m4_columns(5_000, width)
    options = chart_options("z", points, 1 / 60, 5_000 / 1440, chart_width=width + MARGIN_LEFT + MARGIN_RIGHT)
    line, band = options["series"]
    assert line["type"] == "line" and len(line["data"]) == len(points) <= 4 * width
    assert band["type"] == "arearange" and band["zIndex"] < line["zIndex"]
    assert band["color"] == line["color"] == SERIES_COLOR and band["fillOpacity"] == 1
    expected = [
        [(1_700_000_000.0 + (col[0] + col[-1]) * 30.0) * 1000.0, min(ys[i] for i in col), max(ys[i] for i in col)]
        for col in columns.values()
    ]
    assert band["data"] == expected  # one [centre, min, max] per pixel column, from the M4 points alone
    assert band["turboThreshold"] == 0  # more than 1,000 triples would otherwise not be drawn


def test_a_raw_series_has_no_band():
    # Every sample arrived (at most 4 per column): the line alone, as before.
    width = 50
    points, _, _ = _m4_columns(200, width)
    options = chart_options("z", points, 1 / 60, 200 / 1440, chart_width=width + 144)
    assert [s["type"] for s in options["series"]] == ["line"]
    raw = [[1_700_000_000.0 + i * 60.0, float(i % 2)] for i in range(5_000)]
    options = chart_options("z", raw, 1 / 60, 5_000 / 1440, chart_width=width + 144)
    assert [s["type"] for s in options["series"]] == ["line"]


def _response(status_code: int, body: dict, headers: dict[str, str]):
    import json

    import requests

    response = requests.Response()
    response.status_code = status_code
    response._content = json.dumps(body).encode()
    response.headers.update({"Content-Type": "application/json", **headers})
    return response


def test_datagen_busy_is_transient_and_carries_its_retry_after(monkeypatch):
    from email.utils import format_datetime

    from pipeline import clients
    from pipeline.errors import TransientFailure

    busy = {"errors": [{"field": "server", "code": "busy", "message": "1 heavy series are being computed"}]}
    answers = [_response(503, busy, {"Retry-After": "2"})]
    monkeypatch.setattr(clients.session, "post", lambda *args, **kwargs: answers[0])
    with pytest.raises(TransientFailure, match="HTTP 503: .*code busy") as failure:
        clients.fetch_points("t", 50.0, 0.001, 700)
    assert failure.value.retry_after == 2.0

    # Retry-After as an HTTP date; and a 503 without it (retried under the plain backoff).
    import datetime

    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)
    answers[0] = _response(503, busy, {"Retry-After": format_datetime(later, usegmt=True)})
    with pytest.raises(TransientFailure) as failure:
        clients.fetch_points("t", 50.0, 0.001, 700)
    assert 25 <= failure.value.retry_after <= 30
    for headers in ({}, {"Retry-After": "soon"}):
        answers[0] = _response(503, busy, headers)
        with pytest.raises(TransientFailure) as failure:
            clients.fetch_points("t", 50.0, 0.001, 700)
        assert failure.value.retry_after is None


def _in_seconds(seconds: float) -> str:
    """An HTTP date ``seconds`` from now."""
    import datetime
    from email.utils import format_datetime

    return format_datetime(datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("2", 2.0, 2.0),
        (" 7 ", 7.0, 7.0),
        ("0", 0.0, 0.0),
        (30.0, 25.0, 30.0),  # an HTTP date 30 s from now (made when the test runs)
        (-300.0, 0.0, 0.0),  # a date past: no wait
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0, 0.0),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header, low, high):
    from pipeline import clients

    value = _in_seconds(header) if isinstance(header, float) else header
    assert low <= clients.retry_after(_response(503, {}, {"Retry-After": value})) <= high


@pytest.mark.parametrize(
    "header",
    ["soon", "", "1.5", "-3", "2 s", "9" * 5000, "Mon, 01 Jan 99999999999 00:00:00 GMT", "Mon, 99 Foo"],
)
def test_retry_after_garbage_is_no_wait_of_its_own(header):
    from pipeline import clients

    assert clients.retry_after(_response(503, {}, {"Retry-After": header})) is None
    assert clients.retry_after(_response(503, {}, {})) is None


@pytest.mark.parametrize(("retry_after", "expected"), [(5.0, 5.0), (500.0, 30.0), (None, None)])
def test_the_retry_waits_for_retry_after_under_the_one_policy(monkeypatch, retry_after, expected):
    """The points stage's autoretry (Celery's, with backoff and jitter) waits at least the
    service's Retry-After, capped at PIPELINE_RETRY_BACKOFF_MAX."""
    from celery.app.task import Task
    from celery.exceptions import Retry

    from pipeline import clients, jobs, settings, status, tasks
    from pipeline.errors import TransientFailure

    monkeypatch.setattr(settings, "RETRY_BACKOFF_MAX", 30)
    monkeypatch.setattr(status, "begin", lambda *args: status.Begin(superseded=False, deaths=0))
    monkeypatch.setattr(status, "note", lambda *args: None)

    def busy(*args, **kwargs):
        raise TransientFailure("datagen answered HTTP 503: busy", retry_after=retry_after)

    monkeypatch.setattr(clients, "fetch_points", busy)
    asked = {}

    def retry(self, *args, **kwargs):
        asked.update(kwargs)
        return Retry("retry", kwargs["exc"])

    monkeypatch.setattr(Task, "retry", retry)
    task = tasks.generate_points
    task.push_request(retries=0, headers={})
    try:
        with pytest.raises(Retry):
            task.run(jobs.new_job(1, "run-1", "t", 1.0, 1.0))
    finally:
        task.pop_request()
    assert isinstance(asked["exc"], TransientFailure)
    backoff_max_at_first_retry = 1.0  # full jitter in [0, retry_backoff * 2**0]
    if expected is None:
        assert 0 <= asked["countdown"] <= backoff_max_at_first_retry
    else:
        assert asked["countdown"] == expected


def test_a_failure_travels_to_persist_as_its_code_and_parameters(monkeypatch):
    """The row's error as data (issue 23): the code, its parameters, the stage, and the retries."""
    import time

    from pipeline import jobs, status, tasks
    from pipeline.celery import FIRST_FAILURE_HEADER
    from pipeline.errors import TransientFailure

    monkeypatch.setattr(status, "begin", lambda *args: status.Begin(superseded=False, deaths=0))
    monkeypatch.setattr(status, "note", lambda *args: None)
    where = {"service": "export server", "url": "http://127.0.0.1:7801"}

    def export_server_down(job):
        raise TransientFailure(
            "export server at http://127.0.0.1:7801 is unreachable", cause="unreachable", params=where
        )

    def math_error(job):
        params = {"reason": "division_by_zero", "detail": "division by zero", "status": 422, "field": "expression"}
        raise StageFailure("datagen answered HTTP 422: division by zero", cause="math_error", params=params)

    def bug(job):
        raise KeyError("points")

    job = jobs.new_job(1, "run-1", "t", 1.0, 1.0)
    task = tasks.render_chart
    task.push_request(retries=9, headers={FIRST_FAILURE_HEADER: time.time() - 200}, hostname="render@test")
    try:
        gave_up = tasks.run_stage(task, "render", job, export_server_down)
        refused = tasks.run_stage(task, "points", job, math_error)
        broken = tasks.run_stage(task, "render", job, bug)
    finally:
        task.pop_request()
    assert gave_up["cause"] == "unreachable"
    assert gave_up["error_params"] == {"stage": "render", **where, "attempts": 10, "retried_for": 200}
    assert refused["cause"] == "math_error"
    assert refused["error_params"] == {
        "stage": "points",
        "reason": "division_by_zero",
        "detail": "division by zero",
        "status": 422,
        "field": "expression",
    }
    assert (broken["cause"], broken["error_params"]) == ("bug", {"stage": "render", "exception": "KeyError"})
