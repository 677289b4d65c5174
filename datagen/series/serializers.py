"""Serializers that document the API in the OpenAPI schema.

Validation itself is done in :mod:`series.views` so that every problem gets a
precise machine-readable code; these classes describe the shapes.
"""

from __future__ import annotations

from rest_framework import serializers


class PointsRequestSerializer(serializers.Serializer):
    expression = serializers.CharField(help_text="f(t) in the datagen expression language, e.g. 't + 2/t' or 'sin(t)'")
    interval = serializers.FloatField(help_text="depth of the period in days (> 0, finite)")
    dt = serializers.FloatField(help_text="step in hours (> 0, finite)")
    end = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="end of the period, unix seconds; default: now (for reproducible results pass it)",
    )
    width = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="target chart width in pixels; with more than 4*width samples the "
        "series is M4-decimated (first, last, min, max per pixel column)",
    )


class PointsResponseSerializer(serializers.Serializer):
    expression = serializers.CharField()
    interval = serializers.FloatField()
    dt = serializers.FloatField()
    start = serializers.FloatField(help_text="first sample time t_0, unix seconds")
    end = serializers.FloatField(help_text="end of the period, unix seconds")
    samples = serializers.IntegerField(help_text="samples in the series: floor(interval*24/dt + 1e-9) + 1")
    count = serializers.IntegerField(help_text="points returned")
    decimated = serializers.BooleanField(help_text="true when M4 was applied")
    points = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        help_text="[[x, y], ...] ordered by x; x = sample time t (unix seconds)",
    )


class ValidateRequestSerializer(serializers.Serializer):
    expression = serializers.CharField()
    interval = serializers.FloatField(
        required=False, help_text="days; with dt, the whole series request is checked (sample limits too)"
    )
    dt = serializers.FloatField(required=False, help_text="hours")
    width = serializers.IntegerField(required=False, allow_null=True, help_text="pixels, as for /points")
    end = serializers.FloatField(required=False, allow_null=True, help_text="unix seconds, as for /points")


class ValidateResponseSerializer(serializers.Serializer):
    expression = serializers.CharField()
    valid = serializers.BooleanField()
    samples = serializers.FloatField(required=False, help_text="samples of the series, when interval and dt given")


class ErrorSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="request field: expression, interval, dt, end, width or body")
    code = serializers.CharField(
        help_text="syntax, unknown_name, unknown_function, wrong_arguments, too_long, "
        "too_deep, number_out_of_range, required, invalid, not_finite, "
        "not_positive, out_of_range, too_many_samples, not_an_object, not_json, "
        "unsupported_media_type, math_error, timeout"
    )
    message = serializers.CharField()
    position = serializers.IntegerField(required=False, help_text="0-based character offset in the expression")


class ErrorsSerializer(serializers.Serializer):
    errors = ErrorSerializer(many=True)
