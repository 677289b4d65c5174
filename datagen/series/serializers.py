"""The API's shapes: these serializers validate every request and are the OpenAPI schema.

Each field error carries a machine-readable code (``required``, ``invalid``,
``not_finite``, ``not_positive``, ``out_of_range``, the compiler's codes, ...);
:func:`series.errors.exception_handler` turns ``serializer.errors`` into the
service's error body. All field errors of a request are reported together; the
checks that need several fields (the sample limits) run in ``validate`` once
every field is valid, as DRF does.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from rest_framework import serializers
from rest_framework.fields import empty

from .expressions import Compiled, ExpressionError, compile_expression
from .queries import SECONDS_PER_DAY, decimates, sample_count

# Numbers that make sense (issue 19): a step from a millisecond to a century; a window from a
# microsecond (a unix time in a double resolves about 0.24 us today) to a century. Outside,
# the request is refused with ``out_of_range`` naming the field (1e-320, 1e300, ...).
MILLISECOND_HOURS = 1 / 3_600_000
MICROSECOND_DAYS = 1 / 86_400_000_000
CENTURY_DAYS = 36_525.0
CENTURY_HOURS = CENTURY_DAYS * 24
DT_RANGE = (MILLISECOND_HOURS, CENTURY_HOURS)
INTERVAL_RANGE = (MICROSECOND_DAYS, CENTURY_DAYS)


@dataclass(frozen=True)
class SeriesRequest:
    """A valid series request: what /points computes and /validate checks."""

    compiled: Compiled
    interval: float
    dt: float
    end: float
    width: int | None
    samples: int


# ------------------------------------------------------------------ fields


class _JSONValueField(serializers.Field):
    """A field that takes JSON values as they are (no coercion of strings or booleans).

    ``null`` counts as missing, and the messages name the field and its unit."""

    unit = ""

    def __init__(self, *, unit: str = "", **kwargs: Any) -> None:
        self.unit = unit
        super().__init__(**kwargs)

    def bind(self, field_name: str, parent: serializers.BaseSerializer) -> None:
        super().bind(field_name, parent)
        unit = f" ({self.unit})" if self.unit else ""
        self.error_messages = {
            code: str(message).replace("{field}", field_name).replace("{unit}", unit)
            for code, message in self.error_messages.items()
        }

    def fail(self, key: str, **kwargs: Any) -> None:
        """DRF's ``fail`` with the message's parameters as data (``params``): ``kwargs`` and the unit."""
        message = str(self.error_messages[key]).format(**kwargs)
        params = {name: value for name, value in kwargs.items() if not name.endswith("_text")}
        if self.unit:
            params["unit"] = self.unit
        raise serializers.ValidationError(problem(message, params), code=key)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is None and not self.allow_null:
            data = empty  # a null required field is reported as missing
        return super().validate_empty_values(data)

    def to_representation(self, value: Any) -> Any:
        return value


class NumberField(_JSONValueField):
    """A finite JSON number (not a string, not a boolean), optionally > 0."""

    default_error_messages = {
        "required": "{field}{unit} is required",
        "invalid": "{field} must be a number{unit}",
        "not_finite": "{field} must be a finite number",
        "not_positive": "{field} must be greater than zero",
        "out_of_range": "{field} must be between {low_text} and {high_text}{unit}",
    }

    def __init__(
        self, *, positive: bool = False, bounds: tuple[float, float] | None = None, bounds_text: str = "", **kwargs: Any
    ) -> None:
        self.positive, self.bounds, self.bounds_text = positive, bounds, bounds_text
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid", type="number")
        try:
            number = float(data)
        except OverflowError:  # an int too large for a double
            number = math.inf
        if not math.isfinite(number):
            self.fail("not_finite")
        if self.positive and number <= 0:
            self.fail("not_positive", value=number)
        if self.bounds is not None and not self.bounds[0] <= number <= self.bounds[1]:
            low, high = (
                self.bounds_text.split("|") if self.bounds_text else (f"{self.bounds[0]:g}", f"{self.bounds[1]:g}")
            )
            self.fail(
                "out_of_range", value=number, low=self.bounds[0], high=self.bounds[1], low_text=low, high_text=high
            )
        return number


class WidthField(_JSONValueField):
    """Pixels: a JSON integer in 1..DATAGEN_MAX_WIDTH (read at each request)."""

    default_error_messages = {
        "invalid": "{field} must be an integer{unit}",
        "out_of_range": "{field} must be between 1 and {high}",
    }

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid", type="integer")
        if not 1 <= data <= settings.DATAGEN_MAX_WIDTH:
            self.fail("out_of_range", value=data, low=1, high=settings.DATAGEN_MAX_WIDTH)
        return data


class ExpressionField(_JSONValueField):
    """f(t) compiled by the whitelist compiler; the result is a :class:`Compiled`.

    A compiler error becomes ``{"message", "position"}`` with the compiler's code
    (``syntax``, ``unknown_name``, ...), so the error body can give the position."""

    default_error_messages = {
        "required": "{field} is required",
        "invalid": "{field} must be a string",
    }

    def to_internal_value(self, data: Any) -> Compiled:
        if not isinstance(data, str):
            self.fail("invalid", type="string")
        try:
            return compile_expression(
                data, max_length=settings.DATAGEN_MAX_EXPRESSION_LENGTH, max_depth=settings.DATAGEN_MAX_DEPTH
            )
        except ExpressionError as exc:
            raise serializers.ValidationError(problem(exc.message, exc.params), code=exc.code) from None


# ------------------------------------------------------------------ requests


class _RequestSerializer(serializers.Serializer):
    """A request body: a JSON object, or a 400 ``not_an_object`` on ``body``."""

    def run_validation(self, data: Any = empty) -> Any:
        if data is not empty and not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {"body": problem("the body must be a JSON object", {})}, code="not_an_object"
            )
        return super().run_validation(data)


class ExpressionRequestSerializer(_RequestSerializer):
    """An expression to check: f(t) alone."""

    expression = ExpressionField(help_text="f(t) in the datagen expression language, e.g. 't + 2/t' or 'sin(t)'")

    def validate(self, attrs: dict[str, Any]) -> Compiled:
        return attrs["expression"]


class PointsRequestSerializer(ExpressionRequestSerializer):
    """A series: f(t) sampled every dt hours over the interval days that end at end."""

    interval = NumberField(
        positive=True,
        bounds=INTERVAL_RANGE,
        bounds_text="1 us (1/86400000000)|100 years (36525)",
        unit="days",
        help_text="depth of the period in days: from 1 us (1/86400000000 d) to 100 years (36525 d)",
    )
    dt = NumberField(
        positive=True,
        bounds=DT_RANGE,
        bounds_text="1 ms (1/3600000)|100 years (876600)",
        unit="hours",
        help_text="step in hours: from 1 ms (1/3600000 h) to 100 years (876600 h)",
    )
    end = NumberField(
        unit="unix seconds",
        required=False,
        allow_null=True,
        help_text="end of the period, unix seconds; default: now (for reproducible results pass it)",
    )
    width = WidthField(
        unit="pixels",
        required=False,
        allow_null=True,
        help_text="target chart width in pixels (1..DATAGEN_MAX_WIDTH, and at least "
        "samples / DATAGEN_MAX_COLUMN_SAMPLES); with more than 4*width samples the "
        "series is M4-decimated (first, last, min, max per pixel column)",
    )

    def validate(self, attrs: dict[str, Any]) -> SeriesRequest:  # type: ignore[override]
        """The limits that depend on several fields, once every field is valid."""
        interval, dt, width = attrs["interval"], attrs["dt"], attrs.get("width")
        end = attrs.get("end")
        if end is None:
            end = time.time()
        n = sample_count(interval, dt)
        decimated = decimates(n, width)
        max_samples = settings.DATAGEN_MAX_SAMPLES
        max_raw = settings.DATAGEN_MAX_RAW_POINTS
        max_column = settings.DATAGEN_MAX_COLUMN_SAMPLES
        given = f"interval {interval:g} days at dt {dt:g} hours gives {n:g} samples"
        sampling = {"interval": interval, "dt": dt, "samples": n}
        if n > max_samples:
            fail(
                "dt",
                "too_many_samples",
                f"{given}; the limit is {max_samples}",
                kind="total",
                limit=max_samples,
                **sampling,
            )
        if not decimated and n > max_raw:
            fail(
                "dt",
                "too_many_samples",
                f"{given}; at most {max_raw} are returned raw - pass width to get the M4 decimation",
                kind="raw",
                limit=max_raw,
                **sampling,
            )
        if decimated and n > width * max_column:
            least = math.ceil(n / max_column)
            fail(
                "width",
                "out_of_range",
                f"{given}; width must be at least {least} (at most {max_column} per pixel column)",
                kind="width_too_small",
                least=least,
                per_column=max_column,
                **sampling,
            )
        if not math.isfinite(end - interval * SECONDS_PER_DAY):
            fail(
                "interval",
                "out_of_range",
                "end - interval reaches beyond double precision",
                kind="beyond_double",
                end=end,
                interval=interval,
            )
        return SeriesRequest(attrs["expression"], interval, dt, end, width, int(n))


def problem(message: str, params: Mapping[str, Any]) -> dict[str, str]:
    """A field's error detail that keeps its parameters as data (see :func:`series.errors.validation_errors`).

    DRF turns every value of a ValidationError's detail into a string, so the parameters
    travel as one JSON text (numbers stay numbers) beside the English message."""
    return {"message": message, "params": json.dumps(dict(params), allow_nan=False, default=str)}


def fail(field: str, code: str, message: str, **params: Any) -> None:
    raise serializers.ValidationError({field: problem(message, params)}, code=code)


def validate_request_serializer(data: Any) -> serializers.Serializer:
    """/validate checks the whole series request when ``interval`` or ``dt`` is given, else the expression."""
    if isinstance(data, Mapping) and ("interval" in data or "dt" in data):
        return PointsRequestSerializer(data=data)
    return ExpressionRequestSerializer(data=data)


# ------------------------------------------------------------------ responses


class PointsHeadSerializer(serializers.Serializer):
    """Every member of a /points answer except ``points`` (which PostgreSQL writes)."""

    expression = serializers.CharField()
    interval = serializers.FloatField()
    dt = serializers.FloatField()
    start = serializers.FloatField(help_text="first sample time t_0, unix seconds")
    end = serializers.FloatField(help_text="end of the period, unix seconds")
    samples = serializers.IntegerField(help_text="samples in the series: floor(interval*24/dt + 1e-9) + 1")
    count = serializers.IntegerField(help_text="points returned")
    decimated = serializers.BooleanField(help_text="true when M4 was applied")


class PointsResponseSerializer(PointsHeadSerializer):
    points = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        help_text="[[x, y], ...] ordered by x; x = sample time t (unix seconds)",
    )


class ValidateResponseSerializer(serializers.Serializer):
    expression = serializers.CharField()
    valid = serializers.BooleanField()
    samples = serializers.IntegerField(required=False, help_text="samples of the series, when interval or dt given")


class ErrorSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="request field: expression, interval, dt, end, width or body")
    code = serializers.CharField(
        help_text="syntax, unknown_name, unknown_function, wrong_arguments, too_long, "
        "too_deep, number_out_of_range, required, invalid, not_finite, "
        "not_positive, out_of_range, too_many_samples, not_an_object, not_json, too_large, "
        "unsupported_media_type, method_not_allowed, math_error, timeout, busy, unavailable"
    )
    message = serializers.CharField()
    params = serializers.DictField(
        help_text="the message's parameters as data (numbers, names, kind), to word it in another language"
    )
    position = serializers.IntegerField(required=False, help_text="0-based character offset in the expression")


class ErrorsSerializer(serializers.Serializer):
    errors = ErrorSerializer(many=True)
