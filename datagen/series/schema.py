"""The OpenAPI document says what the API enforces, as far as JSON Schema can say it (issue 23 point 4).

drf-spectacular maps the serializers; these extensions give the custom fields the
constraints their ``to_internal_value`` enforces, read from the same attributes and
settings at the moment the document is generated (so a changed DATAGEN_MAX_* shows):

- ``expression``: a string of 1 .. DATAGEN_MAX_EXPRESSION_LENGTH characters with at least
  one that is not white space (an empty or blank expression is refused: ``syntax``);
- ``interval`` and ``dt``: numbers within their bounds (both > 0); ``end``: a number;
- ``width``: an integer in 1 .. DATAGEN_MAX_WIDTH;
- the points request's description states the limits that involve several fields
  (the sample count), which JSON Schema cannot express.

What JSON Schema cannot say (the expression's grammar, finiteness, the cross-field
limits) is refused by the API with a 400 naming the field; tests/test_schema.py
checks that the schema and the API agree on every sample request.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension

# At least one character that is not white space (JSON Schema patterns are not anchored).
NOT_BLANK = r"\S"


class ExpressionFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "series.serializers.ExpressionField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": settings.DATAGEN_MAX_EXPRESSION_LENGTH,
            "pattern": NOT_BLANK,
        }


class NumberFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "series.serializers.NumberField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        field = self.target
        schema: dict[str, Any] = {"type": "number", "format": "double"}
        if field.bounds is not None:  # the API's check: low <= value <= high (low > 0 for dt and interval)
            schema["minimum"], schema["maximum"] = field.bounds
        if field.positive and (field.bounds is None or field.bounds[0] <= 0):
            schema["minimum"], schema["exclusiveMinimum"] = max(0, schema.get("minimum", 0)), True
        return schema


class WidthFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "series.serializers.WidthField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return {"type": "integer", "minimum": 1, "maximum": settings.DATAGEN_MAX_WIDTH}


def sample_limits() -> str:
    """The limits on the sample count, with this instance's numbers."""
    return (
        "Limits across fields (a 400 naming the field, beyond JSON Schema): the series has "
        "samples = floor(interval*24/dt + 1e-9) + 1 (both ends included); "
        f"samples must be at most {settings.DATAGEN_MAX_SAMPLES} (DATAGEN_MAX_SAMPLES; dt, code too_many_samples); "
        f"without width at most {settings.DATAGEN_MAX_RAW_POINTS} samples are returned raw "
        "(DATAGEN_MAX_RAW_POINTS; dt, too_many_samples); with width and more than 4*width samples "
        "the series is M4-decimated and width must be at least "
        f"samples / {settings.DATAGEN_MAX_COLUMN_SAMPLES} (DATAGEN_MAX_COLUMN_SAMPLES; width, out_of_range); "
        "end - interval must stay a finite unix time (interval, out_of_range)."
    )


class PointsRequestExtension(OpenApiSerializerExtension):
    target_class = "series.serializers.PointsRequestSerializer"

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["description"] = f"{schema.get('description', '').rstrip()}\n\n{sample_limits()}".strip()
        return schema


def describe_limits(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Postprocessing hook: the document's description states the sample limits too."""
    info = result.setdefault("info", {})
    info["description"] = f"{info.get('description', '').rstrip()}\n\n{sample_limits()}".strip()
    return result
