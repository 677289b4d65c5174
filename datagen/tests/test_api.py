"""The REST contract against the real PostgreSQL."""

from __future__ import annotations

import json
import math

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

END = 1764374400.5  # a fixed end: reproducible series


def sampling(interval: float, dt: float, end: float = END) -> tuple[float, float, int]:
    """The documented sampling rule, computed independently."""
    start = end - interval * 86400.0
    step = dt * 3600.0
    n = math.floor(interval * 24.0 / dt + 1e-9) + 1
    return start, step, n


def test_t_plus_2_over_t_matches_python(api) -> None:
    r = api.points(expression="t + 2/t", interval=1, dt=1, end=END)
    assert r.status_code == 200
    assert r["Content-Type"] == "application/json"
    body = r.json()
    start, step, n = sampling(1, 1)
    assert body["samples"] == n == 25
    assert body["count"] == n
    assert body["decimated"] is False
    assert body["start"] == start and body["end"] == END
    assert body["expression"] == "t + 2/t"
    assert body["interval"] == 1.0 and body["dt"] == 1.0
    pts = body["points"]
    assert len(pts) == n
    for i in (0, n // 2, n - 1):
        t = start + i * step
        assert pts[i][0] == t
        assert pts[i][1] == t + 2 / t  # exact: IEEE double on both sides
    xs = [p[0] for p in pts]
    assert xs == sorted(xs) and len(set(xs)) == n


@pytest.mark.parametrize("expression", ["sin(t)", "t*t + 2/t", "sqrt(t) * cos(t / 3600)"])
def test_presets_and_example(api, expression: str) -> None:
    from series.expressions import parse

    from .conftest import py_eval

    r = api.points(expression=expression, interval=2.5, dt=0.5, end=END)
    assert r.status_code == 200, r.content
    body = r.json()
    start, step, n = sampling(2.5, 0.5)
    assert body["samples"] == body["count"] == n == 121
    tree = parse(expression)
    for i, (x, y) in enumerate(body["points"]):
        assert x == start + i * step
        assert math.isclose(y, py_eval(tree, x), rel_tol=1e-12)


@pytest.mark.parametrize(
    "interval, dt, n", [(1, 0.1, 241), (1, 24, 2), (1, 25, 1), (0.5, 5, 3), (7, 1 / 60, 10081), (1e-9, 1, 1)]
)
def test_sampling_rule(api, interval: float, dt: float, n: int) -> None:
    r = api.points(expression="t", interval=interval, dt=dt, end=END)
    assert r.status_code == 200, r.content
    body = r.json()
    start, step, expected = sampling(interval, dt)
    assert expected == n
    assert body["samples"] == body["count"] == n
    assert body["points"][0] == [start, start]
    assert body["points"][-1][0] == start + (n - 1) * step


def test_default_end_is_now(api) -> None:
    import time

    before = time.time()
    body = api.points(expression="1", interval=1, dt=6).json()
    assert before <= body["end"] <= time.time()
    assert body["points"][-1][0] == body["end"]


def test_validate(api_nodb) -> None:
    with CaptureQueriesContext(connection) as queries:
        r = api_nodb.post("/api/v1/validate", {"expression": "t + 2/t"})
    assert r.status_code == 200
    assert r.json() == {"expression": "t + 2/t", "valid": True}
    r = api_nodb.post("/api/v1/validate", {"expression": "sin(t"})
    assert r.status_code == 400
    assert r.json()["errors"][0] == {
        "field": "expression",
        "code": "syntax",
        "position": 5,
        "message": "unexpected end of expression at position 5, expected ',' or ')'",
        "params": {"kind": "unexpected_end", "position": 5, "expected": ["comma", "close_parenthesis"]},
    }
    assert len(queries) == 0


def test_validate_with_the_series_parameters_checks_them_all_without_a_query(api_nodb) -> None:
    with CaptureQueriesContext(connection) as queries:
        ok = api_nodb.post("/api/v1/validate", {"expression": "sin(t)", "interval": 1, "dt": 0.5, "width": 700})
        too_many = api_nodb.post("/api/v1/validate", {"expression": "sin(t)", "interval": 36500, "dt": 1e-4})
        several = api_nodb.post("/api/v1/validate", {"expression": "sin(", "interval": 0, "dt": "x"})
    assert len(queries) == 0
    assert ok.status_code == 200
    assert ok.json() == {"expression": "sin(t)", "valid": True, "samples": 49}
    assert too_many.status_code == 400
    assert [(e["field"], e["code"]) for e in too_many.json()["errors"]] == [("dt", "too_many_samples")]
    assert "the limit is" in too_many.json()["errors"][0]["message"]
    assert {(e["field"], e["code"]) for e in several.json()["errors"]} == {
        ("expression", "syntax"),
        ("interval", "not_positive"),
        ("dt", "invalid"),
    }


MATH_REASONS = {
    "division by zero": "division_by_zero",
    "cannot take logarithm of a negative number": "log_of_negative",
    "cannot take logarithm of zero": "log_of_zero",
    "cannot take square root of a negative number": "sqrt_of_negative",
    "value out of range: overflow": "overflow",
    "input is out of range": "argument_out_of_range",
    "a negative number raised to a non-integer power yields a complex result": "negative_to_fractional_power",
}


def errors_of(r) -> list[dict]:
    assert r["Content-Type"] == "application/json"
    return r.json()["errors"]


GOOD = {"expression": "t + 2/t", "interval": 1, "dt": 1, "end": END}


@pytest.mark.parametrize(
    "patch, field, code",
    [
        ({"expression": "t + )"}, "expression", "syntax"),
        ({"expression": "foo(t)"}, "expression", "unknown_function"),
        ({"expression": "x"}, "expression", "unknown_name"),
        ({"expression": "t" * 1001}, "expression", "too_long"),
        ({"expression": "(" * 65 + "t" + ")" * 65}, "expression", "too_deep"),
        ({"expression": 5}, "expression", "invalid"),
        ({"expression": None}, "expression", "required"),
        ({"interval": "1"}, "interval", "invalid"),
        ({"interval": True}, "interval", "invalid"),
        ({"interval": 0}, "interval", "not_positive"),
        ({"interval": -1}, "interval", "not_positive"),
        ({"dt": 0}, "dt", "not_positive"),
        ({"dt": -0.5}, "dt", "not_positive"),
        ({"dt": [1]}, "dt", "invalid"),
        ({"dt": None}, "dt", "required"),
        ({"end": "now"}, "end", "invalid"),
        ({"width": 10.5}, "width", "invalid"),
        ({"width": 0}, "width", "out_of_range"),
        ({"width": 10**9}, "width", "out_of_range"),
        ({"dt": 1e-6}, "dt", "too_many_samples"),
        ({"interval": 10, "dt": 1 / 6000}, "dt", "too_many_samples"),  # raw limit
        ({"interval": 1e304}, "interval", "out_of_range"),
        # Issue 19: numbers that make no sense (steps below a millisecond or beyond a century,
        # windows beyond a century or below a microsecond) are refused, naming the field.
        ({"dt": 1e-320}, "dt", "out_of_range"),
        ({"dt": 1e-7}, "dt", "out_of_range"),  # 0.36 ms
        ({"dt": 1e300}, "dt", "out_of_range"),
        ({"dt": 876601}, "dt", "out_of_range"),
        ({"interval": 1e300}, "interval", "out_of_range"),
        ({"interval": 36526}, "interval", "out_of_range"),
        ({"interval": 1e-320}, "interval", "out_of_range"),
    ],
)
def test_bad_fields_are_400_without_a_query(api_nodb, patch: dict, field: str, code: str) -> None:
    body = {**GOOD, **patch}
    if patch.get("dt", 0) is None:
        del body["dt"]
    with CaptureQueriesContext(connection) as queries:
        r = api_nodb.post("/api/v1/points", body)
    assert r.status_code == 400, r.content
    errs = errors_of(r)
    assert [(e["field"], e["code"]) for e in errs] == [(field, code)]
    assert errs[0]["message"]
    assert len(queries) == 0


@pytest.mark.parametrize(
    "raw, field, code",
    [
        ('{"expression": "t", "interval": NaN, "dt": 1}', "interval", "not_finite"),
        ('{"expression": "t", "interval": 1, "dt": Infinity}', "dt", "not_finite"),
        ('{"expression": "t", "interval": 1, "dt": 1e999}', "dt", "not_finite"),
        ('{"expression": "t", "interval": 1, "dt": -Infinity}', "dt", "not_finite"),
        ('{"expression": "t", "interval": 1, "dt": 1, "end": 1e400}', "end", "not_finite"),
        ("[1, 2]", "body", "not_an_object"),
        ('"t + 2/t"', "body", "not_an_object"),
        ("null", "body", "not_an_object"),
        ('{"expression": ', "body", "not_json"),
    ],
)
def test_bad_bodies(api_nodb, raw: str, field: str, code: str) -> None:
    with CaptureQueriesContext(connection) as queries:
        r = api_nodb.post("/api/v1/points", raw)
    assert r.status_code == 400, r.content
    assert [(e["field"], e["code"]) for e in errors_of(r)] == [(field, code)]
    assert len(queries) == 0


def test_empty_body_names_the_required_fields(api_nodb) -> None:
    r = api_nodb.post("/api/v1/points", "")
    assert r.status_code == 400
    assert [(e["field"], e["code"]) for e in errors_of(r)] == [
        ("expression", "required"),
        ("interval", "required"),
        ("dt", "required"),
    ]


def test_all_field_errors_reported_together(api_nodb) -> None:
    r = api_nodb.post("/api/v1/points", {"expression": "t +", "interval": -1, "dt": "x"})
    assert r.status_code == 400
    assert {e["field"] for e in errors_of(r)} == {"expression", "interval", "dt"}


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_wrong_content_type_is_415(api_nodb, content_type: str) -> None:
    r = api_nodb.post("/api/v1/points", json.dumps(GOOD), content_type=content_type)
    assert r.status_code == 415
    assert errors_of(r)[0]["code"] == "unsupported_media_type"
    r = api_nodb.post("/api/v1/validate", "{}", content_type=content_type)
    assert r.status_code == 415


def test_get_is_405(api_nodb) -> None:
    r = api_nodb.client.get("/api/v1/points")
    assert r.status_code == 405
    assert errors_of(r)[0]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "expression, message",
    [
        ("1 / (t - 1764374400.5)", "division by zero"),
        ("ln(t - 1764374400.5 - 1)", "cannot take logarithm of a negative number"),
        ("ln(1764374400.5 - t)", "cannot take logarithm of zero"),
        ("sqrt(-t)", "cannot take square root of a negative number"),
        ("exp(t)", "value out of range: overflow"),
        ("t ^ 1000", "value out of range: overflow"),
        ("cosh(t)", "value out of range: overflow"),  # PostgreSQL's cosh returns Infinity
        ("atanh(t / t)", "value out of range: overflow"),
        ("asin(t)", "input is out of range"),
        ("(0 - t) ^ 0.5", "a negative number raised to a non-integer power yields a complex result"),
    ],
)
def test_math_errors_are_422_with_postgres_message(api, expression: str, message: str) -> None:
    for width in (None, 3):
        r = api.points(expression=expression, interval=1, dt=1, end=END, width=width)
        assert r.status_code == 422, r.content
        [error] = errors_of(r)
        params = error.pop("params")
        assert error == {"field": "expression", "code": "math_error", "message": message}
        assert params["reason"] == MATH_REASONS[message] and params["detail"] == message


def test_statement_timeout_is_504(api) -> None:
    with connection.cursor() as cur:
        cur.execute("SET statement_timeout = 50")
    try:
        with override_settings(DATAGEN_STATEMENT_TIMEOUT_MS=50):
            r = api.points(expression="sin(t)*cos(t)", interval=3650, dt=1 / 60, end=END, width=100)
    finally:
        with connection.cursor() as cur:
            cur.execute("RESET statement_timeout")
    assert r.status_code == 504, r.content
    assert errors_of(r)[0]["code"] == "timeout"
    assert errors_of(r)[0]["params"] == {"limit_ms": 50}


def test_statement_timeout_is_configured(api) -> None:
    from django.conf import settings

    with connection.cursor() as cur:
        cur.execute("SHOW statement_timeout")
        shown = cur.fetchone()[0]
    assert shown == f"{settings.DATAGEN_STATEMENT_TIMEOUT_MS}ms" or shown.endswith("s")
    assert shown != "0"


def test_health(api) -> None:
    r = api.client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_openapi_schema_is_served(api_nodb) -> None:
    r = api_nodb.client.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert r.status_code == 200
    schema = json.loads(r.content)
    assert "/api/v1/points" in schema["paths"] and "/api/v1/validate" in schema["paths"]
    props = schema["components"]["schemas"]["PointsRequest"]["properties"]
    assert {"expression", "interval", "dt", "end", "width"} <= set(props)


def test_the_answers_have_the_documented_shapes(api) -> None:
    schema = json.loads(api.client.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)
    components = schema["components"]["schemas"]
    points = api.points(**GOOD).json()
    assert set(points) == set(components["PointsResponse"]["properties"])
    assert set(components["PointsResponse"]["required"]) == set(points)
    validate = api.post("/api/v1/validate", {**GOOD, "width": 10}).json()
    assert set(validate) == set(components["ValidateResponse"]["properties"])
    error = api.points(expression="sin(t").json()["errors"][0]
    assert set(error) <= set(components["Error"]["properties"])
    request_body = schema["paths"]["/api/v1/validate"]["post"]["requestBody"]["content"]["application/json"]
    assert request_body["schema"] == {"$ref": "#/components/schemas/ValidateRequest"}
    assert {"expression", "interval", "dt"} == set(components["PointsRequest"]["required"])
    assert "Retry-After" in schema["paths"]["/api/v1/points"]["post"]["responses"]["503"]["headers"]


def test_the_openapi_document_is_valid_without_warnings(tmp_path) -> None:
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "/api/v1/points" in (tmp_path / "schema.yaml").read_text()


def test_swagger_ui_is_served_locally(api_nodb) -> None:
    import re

    r = api_nodb.client.get("/api/v1/docs")
    assert r.status_code == 200
    html = r.content.decode()
    assert not re.search(r"https?://|//cdn|unpkg|jsdelivr", html), "Swagger UI must load nothing from elsewhere"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        if asset == "/api/v1/docs?script=":  # the start script, from the view itself
            continue
        assert asset.startswith("/api/v1/static/"), asset
        served = api_nodb.client.get(asset)
        assert served.status_code == 200, asset
        assert len(b"".join(served.streaming_content)) > 100
    # Content-Security-Policy: no inline script or style; the start script is a file (?script).
    policy = r["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe" not in policy, policy
    assert not re.search(r"<script(?![^>]*\ssrc=)|<style|\sstyle=", html), html
    script = api_nodb.client.get("/api/v1/docs?script=")
    assert script.status_code == 200 and "javascript" in script["Content-Type"]
    assert "/api/v1/schema" in script.content.decode()
    assert '"validatorUrl": null' in script.content.decode()  # no badge from validator.swagger.io


def test_one_url_style_everything_under_api_v1(api_nodb) -> None:
    from django.urls import get_resolver

    routes = {str(p.pattern) for p in get_resolver().url_patterns}
    assert routes == {"api/v1/points", "api/v1/validate", "api/v1/schema", "api/v1/docs", "health"}


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"dt": 1e-320}, "dt"),
        ({"dt": 1e300}, "dt"),
        ({"interval": 1e300}, "interval"),
        ({"interval": 1e-320}, "interval"),
    ],
)
def test_validate_refuses_numbers_that_make_no_sense_naming_the_field(api_nodb, patch: dict, field: str) -> None:
    r = api_nodb.post("/api/v1/validate", {**GOOD, **patch})
    assert r.status_code == 400, r.content
    errs = errors_of(r)
    assert [(e["field"], e["code"]) for e in errs] == [(field, "out_of_range")]
    assert field in errs[0]["message"] and "100 years" in errs[0]["message"]


def test_the_bounds_themselves_are_accepted(api_nodb) -> None:
    for body in ({"interval": 36525, "dt": 876600}, {"interval": 1 / 86_400_000_000, "dt": 1 / 3_600_000}):
        r = api_nodb.post("/api/v1/validate", {**GOOD, **body})
        assert r.status_code == 200, r.content
