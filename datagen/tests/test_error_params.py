"""Every error code's parameters (issue 23): ``params`` holds what the English message is made of,
as data, so that a client words the error in its reader's language.

Each case asks the real API (PostgreSQL behind it where a series is computed) and checks the
code, the ``kind`` where a code has several forms, and every parameter; every code and kind
met here is one of :data:`series.errors.CODES` (the README's "Error codes").
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from series.errors import CODES

END = 1_764_374_400.5
GOOD = {"expression": "t + 2/t", "interval": 1, "dt": 1, "end": END}

met: set[tuple[str, str]] = set()


def only_error(r) -> dict[str, Any]:
    errors = r.json()["errors"]
    assert len(errors) == 1, errors
    error = errors[0]
    assert set(error) <= {"field", "code", "message", "params", "position"}, error
    assert isinstance(error["params"], dict), error
    kind = error["params"].get("kind", "")
    assert error["code"] in CODES, error
    assert kind in CODES[error["code"]], error
    if "position" in error:
        assert error["params"]["position"] == error["position"]
    met.add((error["code"], kind))
    return error


EXPRESSIONS = {
    "t + * 2": (
        "syntax",
        {
            "kind": "unexpected_token",
            "position": 4,
            "token": "*",
            "expected": ["number", "variable", "constant", "function", "open_parenthesis"],
        },
    ),
    "t $ 2": ("syntax", {"kind": "unexpected_character", "position": 2, "character": "$"}),
    "sin(t": ("syntax", {"kind": "unexpected_end", "position": 5, "expected": ["comma", "close_parenthesis"]}),
    "(t": ("syntax", {"kind": "unexpected_end", "position": 2, "expected": ["close_parenthesis"]}),
    "t t": ("syntax", {"kind": "unexpected_token", "position": 2, "token": "t", "expected": ["operator", "end"]}),
    "   ": ("syntax", {"kind": "empty", "position": 0}),
    "2 * sin": ("syntax", {"kind": "needs_parentheses", "position": 4, "function": "sin"}),
    "foo + 1": ("unknown_name", {"position": 0, "name": "foo"}),
    "t + bar(t)": ("unknown_function", {"position": 4, "name": "bar"}),
    "atan2(t)": ("wrong_arguments", {"position": 0, "function": "atan2", "min": 2, "max": 2, "got": 1}),
    "min(t)": ("wrong_arguments", {"position": 0, "function": "min", "min": 2, "max": None, "got": 1}),
    "1e999 * t": ("number_out_of_range", {"position": 0, "number": "1e999"}),
    "t" + "+t" * 600: ("too_long", {"length": 1201, "limit": 1000}),
    "(" * 70 + "t" + ")" * 70: ("too_deep", {"position": 64, "limit": 64}),
    "t" + "+t" * 70: ("too_deep", {"depth": 71, "limit": 64}),
}


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=lambda e: e[:12])
def test_the_compiler_errors_carry_their_parameters(api_nodb, expression: str) -> None:
    code, params = EXPRESSIONS[expression]
    r = api_nodb.post("/api/v1/validate", {"expression": expression})
    assert r.status_code == 400, r.content
    error = only_error(r)
    assert (error["field"], error["code"], error["params"]) == ("expression", code, params), error


FIELDS = {
    "missing dt": ({"expression": "t", "interval": 1}, "dt", "required", {"unit": "hours"}),
    "dt a string": ({**GOOD, "dt": "1"}, "dt", "invalid", {"type": "number", "unit": "hours"}),
    "expression a number": ({**GOOD, "expression": 1}, "expression", "invalid", {"type": "string"}),
    "width a float": ({**GOOD, "width": 1.5}, "width", "invalid", {"type": "integer", "unit": "pixels"}),
    "dt zero": ({**GOOD, "dt": 0}, "dt", "not_positive", {"value": 0.0, "unit": "hours"}),
    "dt negative": ({**GOOD, "dt": -2}, "dt", "not_positive", {"value": -2.0, "unit": "hours"}),
    "interval too long": (
        {**GOOD, "interval": 1e6},
        "interval",
        "out_of_range",
        {"value": 1e6, "low": 1 / 86_400_000_000, "high": 36_525.0, "unit": "days"},
    ),
    "width too wide": (
        {**GOOD, "width": 10**6},
        "width",
        "out_of_range",
        {"value": 10**6, "low": 1, "high": 10_000, "unit": "pixels"},
    ),
}


@pytest.mark.parametrize("case", FIELDS)
def test_the_field_errors_carry_their_parameters(api_nodb, case: str) -> None:
    body, field, code, params = FIELDS[case]
    r = api_nodb.post("/api/v1/points", body)
    assert r.status_code == 400, r.content
    error = only_error(r)
    assert (error["field"], error["code"], error["params"]) == (field, code, params), error


def test_not_finite_carries_the_unit(api_nodb) -> None:
    r = api_nodb.post("/api/v1/points", '{"expression": "t", "interval": 1e999, "dt": 1}')
    error = only_error(r)
    assert (error["field"], error["code"], error["params"]) == ("interval", "not_finite", {"unit": "days"})


def test_the_sample_limits_carry_the_numbers_they_are_made_of(api_nodb) -> None:
    r = api_nodb.post("/api/v1/validate", {**GOOD, "interval": 3650, "dt": 1e-3, "width": 100})
    error = only_error(r)
    assert error["code"] == "too_many_samples" and error["field"] == "dt"
    assert error["params"] == {
        "kind": "total",
        "limit": 10_000_000,
        "interval": 3650,
        "dt": 1e-3,
        "samples": 87_600_001,
    }
    assert error["message"] == "interval 3650 days at dt 0.001 hours gives 8.76e+07 samples; the limit is 10000000"

    r = api_nodb.post("/api/v1/validate", {**GOOD, "interval": 100, "dt": 1e-3})
    error = only_error(r)
    assert error["params"] == {"kind": "raw", "limit": 1_000_000, "interval": 100, "dt": 1e-3, "samples": 2_400_001}

    r = api_nodb.post("/api/v1/validate", {**GOOD, "interval": 100, "dt": 1e-3, "width": 2})
    error = only_error(r)
    assert (error["field"], error["code"]) == ("width", "out_of_range")
    assert error["params"] == {
        "kind": "width_too_small",
        "least": 25,
        "per_column": 100_000,
        "interval": 100,
        "dt": 1e-3,
        "samples": 2_400_001,
    }


def test_the_body_and_method_errors_carry_their_parameters(api_nodb) -> None:
    r = api_nodb.post("/api/v1/points", [1, 2])
    assert only_error(r)["code"] == "not_an_object"
    r = api_nodb.post("/api/v1/points", "{not json")
    assert only_error(r)["code"] == "not_json"
    r = api_nodb.post("/api/v1/points", "expression=t", content_type="text/plain")
    error = only_error(r)
    assert (error["code"], error["params"]) == ("unsupported_media_type", {"media_type": "text/plain"})
    r = api_nodb.client.get("/api/v1/points")
    error = only_error(r)
    assert (error["code"], error["params"]) == ("method_not_allowed", {"method": "GET"})
    r = api_nodb.client.get("/api/v1/nothing-here")
    error = only_error(r)
    assert (error["code"], error["params"]) == ("not_found", {"path": "/api/v1/nothing-here"})


def test_a_math_error_names_its_reason(api) -> None:
    r = api.points(expression="1 / (t - 1764374400.5)", interval=1, dt=1, end=END)
    assert r.status_code == 422
    error = only_error(r)
    assert error["params"] == {"reason": "division_by_zero", "detail": "division by zero", "sqlstate": "22012"}
    with override_settings(DATAGEN_MAX_SAMPLES=10**7):
        r = api.points(expression="cosh(t)", interval=1, dt=1, end=END)
    assert only_error(r)["params"] == {"reason": "overflow", "detail": "value out of range: overflow"}


def test_every_code_met_is_listed() -> None:
    """Runs last in this module: every (code, kind) the cases above met is in CODES."""
    assert met, "run with the whole module"
    for code, kind in met:
        assert code in CODES and kind in CODES[code], (code, kind)
