"""Any body gets a 4xx or a 2xx, never a 5xx; heavy work is bounded in total (heavy slots)."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from series.slots import HEAVY_LOCK_KEY

END = 1764374400.5
GOOD = {"expression": "t + 2/t", "interval": 1, "dt": 1, "end": END}
DATAGEN_DIR = Path(__file__).resolve().parent.parent


def codes(r) -> list[tuple[str, str]]:
    assert r["Content-Type"] == "application/json"
    return [(e["field"], e["code"]) for e in r.json()["errors"]]


# ------------------------------------------------------------------ hostile bodies

HOSTILE_BODIES = [
    # (body bytes, content type, status, (field, code))
    (b"[" * 3000 + b"]" * 3000, "application/json", 400, ("body", "not_json")),  # RecursionError in json
    (b'{"expression": ' + b"[" * 3000 + b"]" * 3000 + b"}", "application/json", 400, ("body", "not_json")),
    (b'{"expression": ' + b"[" * 500 + b"]" * 500 + b"}", "application/json", 400, ("expression", "invalid")),
    (b"\xff\xfe{", "application/json", 400, ("body", "not_json")),  # not UTF-8
    (b'{"expression": "t\xe9"}', "application/json", 400, ("body", "not_json")),  # Latin-1 byte in UTF-8
    (b'{"expression": "t"}', "application/json; charset=bz2_codec", 400, ("body", "not_json")),
    (b'{"expression": "t"}', "application/json; charset=utf-16", 400, ("body", "not_json")),
    (b"9" * 5000, "application/json", 400, ("body", "not_json")),  # beyond Python's int digits limit
    (b'{"expression": "t", "interval": 1e999999, "dt": 1}', "application/json", 400, ("interval", "not_finite")),
    (
        b'{"expression": "t", "interval": ' + b"9" * 4000 + b', "dt": 1}',
        "application/json",
        400,
        ("interval", "not_finite"),
    ),
    (
        b'{"expression": "t", "interval": 1, "dt": 1, "width": ' + b"9" * 4000 + b"}",
        "application/json",
        400,
        ("width", "out_of_range"),
    ),
    (b"x" * (64 * 1024 + 1), "application/json", 413, ("body", "too_large")),
    (b"<a/>", "application/xml", 415, ("body", "unsupported_media_type")),
    (b'{"expression": "t"}', "", 415, ("body", "unsupported_media_type")),
    (b"expression=t", "application/x-www-form-urlencoded", 415, ("body", "unsupported_media_type")),
    (b"true", "application/json", 400, ("body", "not_an_object")),
    (b"12", "application/json", 400, ("body", "not_an_object")),
    (b'{"expression": {"$gt": ""}}', "application/json", 400, ("expression", "invalid")),
]


@pytest.mark.parametrize("path", ["/api/v1/points", "/api/v1/validate"])
@pytest.mark.parametrize("body, content_type, status, error", HOSTILE_BODIES)
def test_hostile_bodies_are_4xx_without_a_query(
    api_nodb, path: str, body: bytes, content_type: str, status: int, error: tuple[str, str]
) -> None:
    with CaptureQueriesContext(connection) as queries:
        r = api_nodb.client.generic("POST", path, body, content_type=content_type)
    assert r.status_code == status, r.content
    assert codes(r)[0] == error  # first: /points also names its other missing fields
    assert len(queries) == 0


def test_unknown_path_is_a_json_404(api_nodb) -> None:
    r = api_nodb.client.get("/api/v2/points")
    assert r.status_code == 404
    assert codes(r) == [("path", "not_found")]


def test_a_bug_is_a_json_500_never_django_debug_page(api_nodb, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.conf import settings as django_settings

    from series import serializers

    def broken(data: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(serializers, "validate_request_serializer", broken)
    api_nodb.client.raise_request_exception = False
    r = api_nodb.post("/api/v1/validate", {"expression": "t"})
    assert django_settings.DEBUG is False
    assert r.status_code == 500
    assert codes(r) == [("server", "internal_error")]
    assert b"Traceback" not in r.content and b"a bug" not in r.content


def test_width_must_leave_at_most_max_column_samples_per_pixel(api_nodb) -> None:
    # 10 years at one minute: 5.26 million samples; 5.26 M / 100,000 per column -> width >= 53.
    body = {**GOOD, "interval": 3652.5, "dt": 1 / 60}
    with CaptureQueriesContext(connection) as queries:
        narrow = api_nodb.post("/api/v1/points", {**body, "width": 1})
        checked = api_nodb.post("/api/v1/validate", {**body, "width": 52})
        wide = api_nodb.post("/api/v1/validate", {**body, "width": 53})
    assert len(queries) == 0
    for r in (narrow, checked):
        assert r.status_code == 400
        assert codes(r) == [("width", "out_of_range")]
        assert "width must be at least 53" in r.json()["errors"][0]["message"]
    assert wide.status_code == 200 and wide.json()["samples"] == 5_259_601


# ------------------------------------------------------------------ property: never a 5xx

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
EXPRESSIONS = st.sampled_from(
    [
        "t",
        "t + 2/t",
        "sin(t)",
        "1 / (t - t)",
        "ln(t - 1e12)",
        "sqrt(-t)",
        "exp(t)",
        "cosh(t)",
        "atanh(t / t)",
        "t ^ 1000",
    ]
) | st.text(alphabet="t0123456789.e+-*/^(), sincoqrtlgxpmahb", max_size=30)
NUMBERS = st.floats(allow_nan=True, allow_infinity=True) | st.integers(min_value=-(10**30), max_value=10**30)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "expression": EXPRESSIONS | JSON_VALUES,
        "interval": NUMBERS | st.floats(1e-6, 50) | JSON_VALUES,
        "dt": NUMBERS | st.floats(1e-3, 50) | JSON_VALUES,
        "end": NUMBERS | JSON_VALUES,
        "width": st.integers(-5, 20_000) | JSON_VALUES,
    },
)
# Mostly valid series requests, so that PostgreSQL's side (math errors, M4, overflow) is reached too.
SERIES = st.fixed_dictionaries(
    {"expression": EXPRESSIONS, "interval": st.floats(1e-4, 20) | NUMBERS, "dt": st.floats(1e-2, 30) | NUMBERS},
    optional={
        "end": st.floats(-1e12, 1e12) | NUMBERS,
        "width": st.integers(1, 300) | st.integers(-5, 20_000),
    },
)
BODIES = SERIES | FIELDS | JSON_VALUES


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(body=BODIES)
def test_any_json_body_is_answered_2xx_or_4xx(api, body: Any) -> None:
    raw = json.dumps(body, allow_nan=True)  # NaN and Infinity as the lenient parser reads them
    # Small limits keep every series that passes validation cheap.
    with override_settings(DATAGEN_MAX_SAMPLES=20_000, DATAGEN_MAX_RAW_POINTS=20_000):
        for path in ("/api/v1/points", "/api/v1/validate"):
            r = api.post(path, raw)
            assert r.status_code < 500, (path, raw, r.content)
            assert r["Content-Type"] == "application/json"
            event(f"{path} {r.status_code}")
            if r.status_code >= 400:
                assert r.json()["errors"], raw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
    content_type=st.sampled_from(
        ["application/json", "application/json; charset=latin-1", "text/plain", "", "application/json; charset=x"]
    ),
)
def test_any_bytes_are_answered_4xx(api_nodb, raw: bytes, content_type: str) -> None:
    with CaptureQueriesContext(connection) as queries:
        r = api_nodb.client.generic("POST", "/api/v1/validate", raw, content_type=content_type)
    assert r.status_code < 500, (raw, content_type, r.content)
    assert len(queries) == 0


# ------------------------------------------------------------------ heavy slots


def heavy_locks_held(cur) -> int:
    cur.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objsubid = 2 AND granted",
        [HEAVY_LOCK_KEY],
    )
    return cur.fetchone()[0]


@pytest.fixture
def other_session(transactional_db: None):
    """A second PostgreSQL session on the test database (autocommit off: its locks last until rollback)."""
    params = connection.get_connection_params()
    conn = psycopg2.connect(**{k: v for k, v in params.items() if k not in {"options", "cursor_factory"}})
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def test_a_heavy_series_gets_503_busy_while_every_slot_is_taken(api, other_session) -> None:
    heavy = {**GOOD, "interval": 30, "dt": 1 / 60, "width": 100}  # 43,201 samples: heavy at the limit below
    with override_settings(DATAGEN_HEAVY_SAMPLES=10_000, DATAGEN_HEAVY_SLOTS=2, DATAGEN_RETRY_AFTER=3):
        with other_session.cursor() as cur:  # another datagen process holds both slots
            cur.execute("SELECT pg_advisory_xact_lock(%s, 0), pg_advisory_xact_lock(%s, 1)", [HEAVY_LOCK_KEY] * 2)
        busy = api.points(**heavy)
        light = api.points(**GOOD)
        checked = api.post("/api/v1/validate", heavy)
        other_session.rollback()  # the other process finishes
        after = api.points(**heavy)
    assert busy.status_code == 503
    assert busy["Retry-After"] == "3"
    assert codes(busy) == [("server", "busy")]
    assert busy.json()["errors"][0]["params"] == {"retry_after": int(busy["Retry-After"])}
    assert light.status_code == 200 and checked.status_code == 200
    assert after.status_code == 200 and after.json()["samples"] == 43_201
    with connection.cursor() as cur:
        assert heavy_locks_held(cur) == 0  # the slot went with the transaction


def test_a_big_raw_series_needs_a_heavy_slot_too(api, other_session) -> None:
    """With the default settings: a raw answer of more than DATAGEN_HEAVY_RAW_POINTS points (the
    admin's CSV download) waits for a heavy slot like a big M4 series; a small one does not."""
    big_raw = {**GOOD, "interval": 100, "dt": 1 / 60}  # 144,001 raw points: heavy
    with other_session.cursor() as cur:  # another datagen process holds the one slot
        cur.execute("SELECT pg_advisory_xact_lock(%s, 0)", [HEAVY_LOCK_KEY])
    busy = api.points(**big_raw)
    small_raw = api.points(**GOOD)  # 25 points
    decimated = api.points(**big_raw, width=1000)  # the same samples, M4: light below DATAGEN_HEAVY_SAMPLES
    other_session.rollback()  # the other process finishes
    after = api.points(**big_raw)
    assert busy.status_code == 503, busy.content
    assert busy["Retry-After"] == "2"
    assert codes(busy) == [("server", "busy")]
    assert busy.json()["errors"][0]["params"] == {"retry_after": int(busy["Retry-After"])}
    assert small_raw.status_code == 200 and small_raw.json()["count"] == 25
    assert decimated.status_code == 200 and decimated.json()["decimated"] is True
    assert after.status_code == 200 and after.json()["count"] == 144_001


def test_a_failed_heavy_series_frees_its_slot(api) -> None:
    with override_settings(DATAGEN_HEAVY_SAMPLES=10, DATAGEN_HEAVY_SLOTS=1):
        for _ in range(2):
            r = api.points(expression="1 / (t - 1764374400.5)", interval=1, dt=1 / 60, end=END, width=10)
            assert r.status_code == 422, r.content
        assert api.points(expression="t", interval=1, dt=1 / 60, end=END, width=10).status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn_url(transactional_db: None):
    """datagen under gunicorn as deployed (sync workers), on the test database, one heavy slot."""
    port = _free_port()
    env = {
        **os.environ,
        "POSTGRES_DB": connection.settings_dict["NAME"],
        # The suite's own connection role (see conftest): datagen's role is the bootstrap's.
        "DATAGEN_POSTGRES_USER": connection.settings_dict["USER"],
        "DATAGEN_POSTGRES_PASSWORD": connection.settings_dict["PASSWORD"] or "",
        "DATAGEN_HEAVY_SLOTS": "1",
        "DATAGEN_HEAVY_SAMPLES": "1000000",
        "DATAGEN_STATEMENT_TIMEOUT_MS": "120000",
        "DATAGEN_CONN_MAX_AGE": "0",
    }
    command = [sys.executable, "-m", "gunicorn", "--chdir", str(DATAGEN_DIR), "datagen_service.wsgi:application"]
    # --preload: the application is loaded before the fork, so all three workers answer from the start.
    command += [
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "3",
        "--preload",
        "--timeout",
        "120",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            assert proc.poll() is None, "gunicorn exited"
            try:
                if requests.get(url + "/health", timeout=5).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def test_over_the_wire_allow_is_sent_once_and_a_big_body_is_413(gunicorn_url: str) -> None:
    """Through gunicorn as deployed: DRF's own Allow header on a 405, sent once; a body four
    times DATA_UPLOAD_MAX_MEMORY_SIZE refused by Django's own limit (RequestDataTooBig) before
    it is read; the same body chunked (no Content-Length) is still no 5xx."""
    import http.client
    from urllib.parse import urlsplit

    address = urlsplit(gunicorn_url)
    for path in ("/api/v1/points", "/api/v1/validate"):
        conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            assert r.status == 405
            assert r.headers.get_all("Allow") == ["POST, OPTIONS"]
            assert [e["code"] for e in json.loads(r.read())["errors"]] == ["method_not_allowed"]
        finally:
            conn.close()
    body = json.dumps({**GOOD, "expression": "t" * (256 * 1024)})
    for path in ("/api/v1/points", "/api/v1/validate"):
        r = requests.post(gunicorn_url + path, data=body, headers={"Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 413, r.content[:500]
        assert r.json()["errors"] == [
            {
                "field": "body",
                "code": "too_large",
                "message": "the body is larger than 65536 bytes",
                "params": {"limit": 65536},
            }
        ]
        chunks = (body[i : i + 8192].encode() for i in range(0, len(body), 8192))
        r = requests.post(gunicorn_url + path, data=chunks, headers={"Content-Type": "application/json"}, timeout=30)
        assert 400 <= r.status_code < 500 and r.json()["errors"], r.content[:500]


def test_validate_answers_while_heavy_series_run_and_the_excess_is_503(gunicorn_url: str) -> None:
    # about 10 million samples each (about 2 s of PostgreSQL); one heavy slot, three workers.
    heavy = {"expression": "t + 2/t", "interval": 6944, "dt": 1 / 60, "end": END, "width": 1000}
    results: list[requests.Response] = []

    def post_heavy() -> None:
        results.append(requests.post(gunicorn_url + "/api/v1/points", json=heavy, timeout=120))

    threads = [threading.Thread(target=post_heavy) for _ in range(4)]
    for thread in threads:
        thread.start()
    with connection.cursor() as cur:
        deadline = time.monotonic() + 60
        while heavy_locks_held(cur) == 0:
            assert time.monotonic() < deadline, "no heavy series started"
            time.sleep(0.01)
        while len(results) < 3:  # the three others are refused at once, without waiting for a worker
            assert time.monotonic() < deadline, f"the excess heavy requests were not answered: {results}"
            time.sleep(0.01)
        # A heavy series is running: /validate (and a light series) are answered meanwhile.
        validate = requests.post(gunicorn_url + "/api/v1/validate", json=heavy, timeout=60)
        light = requests.post(gunicorn_url + "/api/v1/points", json=GOOD, timeout=60)
        still_running = heavy_locks_held(cur)
    for thread in threads:
        thread.join(120)
    statuses = [r.status_code for r in results]
    assert statuses == [503, 503, 503, 200], [r.content[:200] for r in results]
    assert still_running == 1, "the heavy series should still have been running"
    assert validate.status_code == 200 and validate.json()["samples"] == math.floor(6944 * 24 * 60 + 1e-9) + 1
    assert light.status_code == 200 and light.json()["samples"] == 25
    for r in results[:3]:
        assert [e["code"] for e in r.json()["errors"]] == ["busy"], r.content
        assert r.headers["Retry-After"] == "2"
    assert results[3].json()["decimated"] is True and results[3].json()["count"] <= 4000
