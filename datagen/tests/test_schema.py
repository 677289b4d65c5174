"""Issue 23 point 4: the published OpenAPI document says what the API enforces.

Every sample request is checked twice: against the request schema that
/api/v1/schema publishes (as JSON Schema, draft 4: OpenAPI 3.0's dialect) and by
the API itself (/api/v1/validate, which runs the same serializer as /points
without a query). They must agree: what the schema refuses the API refuses on
the same field, what the schema accepts the API accepts, except for the
documented limits JSON Schema cannot say (the expression's grammar, the sample
count across fields), which the schema's description states.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
from django.test import override_settings

GOOD = {"expression": "t + 2/t", "interval": 1, "dt": 1, "end": 1764374400.5}

# (request, expected): "valid"; ("schema", field): the schema and the API refuse it on that field;
# ("beyond", field, code): the schema cannot say it (stated in the description), the API refuses it.
CASES: dict[str, tuple[dict[str, Any], Any]] = {
    "good": (GOOD, "valid"),
    "no end, a width": ({**GOOD, "end": None, "width": 800}, "valid"),
    "dt at its low bound": ({**GOOD, "dt": 1 / 3_600_000, "interval": 1e-6}, "valid"),
    "dt at its high bound": ({**GOOD, "dt": 876_600, "interval": 36_525}, "valid"),
    "interval at its low bound": ({**GOOD, "interval": 1 / 86_400_000_000}, "valid"),
    "the longest expression": ({**GOOD, "expression": "t" + " " * 999}, "valid"),
    "width at its maximum": ({**GOOD, "width": 10_000}, "valid"),
    "empty expression": ({**GOOD, "expression": ""}, ("schema", "expression")),
    "blank expression": ({**GOOD, "expression": "  \t "}, ("schema", "expression")),
    "expression too long": ({**GOOD, "expression": "t" * 1001}, ("schema", "expression")),
    "expression not a string": ({**GOOD, "expression": 5}, ("schema", "expression")),
    "no expression": ({"interval": 1, "dt": 1}, ("schema", "expression")),
    "no dt": ({"expression": "t", "interval": 1}, ("schema", "dt")),
    "dt zero": ({**GOOD, "dt": 0}, ("schema", "dt")),
    "dt negative": ({**GOOD, "dt": -1}, ("schema", "dt")),
    "dt below 1 ms": ({**GOOD, "dt": 1e-7}, ("schema", "dt")),
    "dt above 100 years": ({**GOOD, "dt": 876_601}, ("schema", "dt")),
    "dt a string": ({**GOOD, "dt": "1"}, ("schema", "dt")),
    "dt a boolean": ({**GOOD, "dt": True}, ("schema", "dt")),
    "interval zero": ({**GOOD, "interval": 0}, ("schema", "interval")),
    "interval 1e300": ({**GOOD, "interval": 1e300}, ("schema", "interval")),
    "interval below 1 us": ({**GOOD, "interval": 1e-12}, ("schema", "interval")),
    "end a string": ({**GOOD, "end": "now"}, ("schema", "end")),
    "width zero": ({**GOOD, "width": 0}, ("schema", "width")),
    "width too large": ({**GOOD, "width": 10_001}, ("schema", "width")),
    "width a fraction": ({**GOOD, "width": 1.5}, ("schema", "width")),
    "width a float": ({**GOOD, "width": 2.0}, ("schema", "width")),
    "grammar": ({**GOOD, "expression": "sin(t"}, ("beyond", "expression", "syntax")),
    "unknown name": ({**GOOD, "expression": "x + 1"}, ("beyond", "expression", "unknown_name")),
    "too many samples": ({**GOOD, "interval": 3650, "dt": 1e-3}, ("beyond", "dt", "too_many_samples")),
    "too many raw samples": ({**GOOD, "interval": 365, "dt": 1 / 360}, ("beyond", "dt", "too_many_samples")),
    "width too small for the samples": (
        {**GOOD, "interval": 365, "dt": 1 / 360, "width": 10},
        ("beyond", "width", "out_of_range"),
    ),
}


def published(client) -> dict[str, Any]:
    response = client.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)


def json_schema(document: dict[str, Any], component: str) -> dict[str, Any]:
    """A component as draft-4 JSON Schema: OpenAPI 3.0's ``nullable`` becomes a "null" type."""
    schema = copy.deepcopy(document["components"]["schemas"][component])
    for prop in schema["properties"].values():
        if prop.pop("nullable", False):
            prop["type"] = [prop["type"], "null"]
    jsonschema.Draft4Validator.check_schema(schema)
    return schema


def schema_fields(schema: dict[str, Any], body: dict[str, Any]) -> set[str]:
    """The fields the schema refuses ``body`` on (empty: valid)."""
    fields = set()
    for error in jsonschema.Draft4Validator(schema).iter_errors(body):
        fields.add(error.message.split("'")[1] if error.validator == "required" else str(error.path[0]))
    return fields


def api_errors(api, body: dict[str, Any]) -> tuple[int, set[tuple[str, str]]]:
    response = api.post("/api/v1/validate", body)
    errors = response.json().get("errors", []) if response.status_code != 200 else []
    return response.status_code, {(error["field"], error["code"]) for error in errors}


@pytest.mark.parametrize(("body", "expected"), CASES.values(), ids=CASES.keys())
def test_the_schema_and_the_api_agree_on_every_sample_request(api_nodb, body, expected) -> None:
    schema = json_schema(published(api_nodb.client), "PointsRequest")
    refused_by_schema = schema_fields(schema, body)
    status, errors = api_errors(api_nodb, body)
    if expected == "valid":
        assert not refused_by_schema and status == 200, (refused_by_schema, status, errors)
    elif expected[0] == "schema":
        field = expected[1]
        assert refused_by_schema == {field}, f"the schema refuses {refused_by_schema}, expected {field}"
        assert status == 400 and {f for f, _code in errors} == {field}, (status, errors)
    else:
        _, field, code = expected
        assert not refused_by_schema, f"the schema refuses {refused_by_schema}"
        assert status == 400 and errors == {(field, code)}, (status, errors)


@pytest.mark.parametrize("expression", ["", " ", "sin(t)", "t" * 1001])
def test_the_expression_only_request_agrees_too(api_nodb, expression) -> None:
    schema = json_schema(published(api_nodb.client), "ExpressionRequest")
    refused_by_schema = schema_fields(schema, {"expression": expression})
    status, errors = api_errors(api_nodb, {"expression": expression})
    assert (status == 200) == (not refused_by_schema), (refused_by_schema, status, errors)
    if refused_by_schema:
        assert {f for f, _code in errors} == refused_by_schema == {"expression"}


def test_the_description_states_the_limits_across_fields(api_nodb) -> None:
    document = published(api_nodb.client)
    for text in (document["info"]["description"], document["components"]["schemas"]["PointsRequest"]["description"]):
        assert "samples = floor(interval*24/dt + 1e-9) + 1" in text
        assert "at most 10000000 (DATAGEN_MAX_SAMPLES" in text and "at most 1000000 samples are returned raw" in text
        assert "samples / 100000 (DATAGEN_MAX_COLUMN_SAMPLES" in text


@override_settings(DATAGEN_MAX_WIDTH=500, DATAGEN_MAX_EXPRESSION_LENGTH=20, DATAGEN_MAX_SAMPLES=1234)
def test_the_document_follows_the_instances_limits(api_nodb) -> None:
    document = published(api_nodb.client)
    props = document["components"]["schemas"]["PointsRequest"]["properties"]
    assert props["width"]["maximum"] == 500 and props["expression"]["maxLength"] == 20
    assert "at most 1234 (DATAGEN_MAX_SAMPLES" in document["info"]["description"]
    schema = json_schema(document, "PointsRequest")
    for body, fields in (({**GOOD, "width": 501}, {"width"}), ({**GOOD, "expression": "t" * 21}, {"expression"})):
        assert schema_fields(schema, body) == fields
        assert {f for f, _code in api_errors(api_nodb, body)[1]} == fields
