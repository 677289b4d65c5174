"""datagen's log: one JSON request line per request, every status, with the run id of a valid X-Run-Id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from django.test import Client

from series import logs, views

VALID = {"expression": "t", "interval": 1, "dt": 1}


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """What datagen's one handler writes, during the test."""
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


def request_lines(stream: io.StringIO) -> list[dict]:
    records = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [r for r in records if r["event"] == "request"]


def post(client: Client, path: str, body: object, run_id: str | None = None):
    headers = {"X-Run-Id": run_id} if run_id is not None else {}
    return client.post(path, json.dumps(body), content_type="application/json", headers=headers)


@pytest.mark.django_db
def test_the_request_line_carries_the_run_of_a_valid_header(lines) -> None:
    answer = post(Client(), "/api/v1/validate", VALID, "0b5e7c1e-6f0c-4b43-9d1a-1f2e3d4c5b6a")
    assert answer.status_code == 200
    (line,) = request_lines(lines)
    assert {k: line[k] for k in ("method", "path", "status", "run_id", "service", "level")} == {
        "method": "POST",
        "path": "/api/v1/validate",
        "status": 200,
        "run_id": "0b5e7c1e-6f0c-4b43-9d1a-1f2e3d4c5b6a",
        "service": "datagen",
        "level": "info",
    }
    assert line["duration_ms"] >= 0 and line["timestamp"].endswith("Z")


@pytest.mark.django_db
@pytest.mark.parametrize("hostile", ["x" * 65, "a b", "a;b", '"},{"x":"y', "../../etc"])
def test_a_hostile_header_is_ignored_and_never_written(lines, hostile: str) -> None:
    post(Client(), "/api/v1/validate", VALID, hostile)
    (line,) = request_lines(lines)
    assert "run_id" not in line
    assert hostile not in lines.getvalue() and json.dumps(hostile)[1:-1] not in lines.getvalue()


@pytest.mark.django_db
def test_every_status_gets_its_line_errors_included(lines, monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client(raise_request_exception=False)
    assert post(client, "/api/v1/validate", {"expression": "t +"}, "r-400").status_code == 400
    assert client.get("/no/such/path", headers={"X-Run-Id": "r-404"}).status_code == 404
    assert client.get("/api/v1/validate", headers={"X-Run-Id": "r-405"}).status_code == 405

    def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(views.ValidateView, "post", bug)
    assert post(client, "/api/v1/validate", VALID, "r-500").status_code == 500
    statuses = {line["run_id"]: line["status"] for line in request_lines(lines)}
    assert statuses == {"r-400": 400, "r-404": 404, "r-405": 405, "r-500": 500}
    # The bug's traceback is a line of its own run, on one line (not Django's text page).
    errors = [json.loads(line) for line in lines.getvalue().splitlines() if '"level": "error"' in line]
    assert errors and all(e.get("run_id") == "r-500" for e in errors)
    assert any("RuntimeError: a bug" in e.get("exception", "") for e in errors)


def test_a_long_path_is_cut() -> None:
    assert logs.shown_path("/a" * 50) == "/a" * 50
    assert logs.shown_path("/" + "a" * 500) == "/" + "a" * (logs.PATH_LIMIT - 1) + "..."


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="DATAGEN_LOG_FORMAT"):
        logs.logging_config("INFO", "yaml")
