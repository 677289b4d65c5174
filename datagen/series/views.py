"""HTTP views: validate the request, call the compiler and the one statement, answer."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from . import serializers as s
from .errors import error, error_response
from .expressions import Compiled, ExpressionError, compile_expression
from .queries import NonFiniteResult, generate_series_points, sample_count

log = logging.getLogger(__name__)

_MISSING = object()

# SQLSTATE class 22 = "data exception": division by zero, invalid argument for
# logarithm / power / sqrt, numeric value out of range, ...
_MATH_ERROR_CLASS = "22"
_QUERY_CANCELED = "57014"


def _limits() -> tuple[int, int]:
    return settings.DATAGEN_MAX_EXPRESSION_LENGTH, settings.DATAGEN_MAX_DEPTH


def _compile(value: Any, errors: list[dict[str, Any]]) -> Compiled | None:
    if value is _MISSING or value is None:
        errors.append(error("expression", "required", "expression is required"))
        return None
    if not isinstance(value, str):
        errors.append(error("expression", "invalid", "expression must be a string"))
        return None
    max_length, max_depth = _limits()
    try:
        return compile_expression(value, max_length=max_length, max_depth=max_depth)
    except ExpressionError as exc:
        errors.append(exc.as_dict("expression"))
        return None


def _positive_number(body: dict[str, Any], field: str, unit: str, errors: list[dict[str, Any]]) -> float | None:
    value = body.get(field, _MISSING)
    if value is _MISSING or value is None:
        errors.append(error(field, "required", f"{field} ({unit}) is required"))
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append(error(field, "invalid", f"{field} must be a number ({unit})"))
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a double
        number = math.inf
    if not math.isfinite(number):
        errors.append(error(field, "not_finite", f"{field} must be a finite number"))
        return None
    if number <= 0:
        errors.append(error(field, "not_positive", f"{field} must be greater than zero"))
        return None
    return number


def _body(request: Request) -> tuple[dict[str, Any] | None, JsonResponse | None]:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if limit is not None and length > limit:
        return None, error_response([error("body", "too_large", f"the body is larger than {limit} bytes")], 413)
    data = request.data  # DRF: 415 for a non-JSON content type, 400 for bad JSON
    if not isinstance(data, dict):
        return None, error_response([error("body", "not_an_object", "the body must be a JSON object")], 400)
    return data, None


def _database_error(exc: DatabaseError) -> JsonResponse:
    cause = exc.__cause__
    pgcode = getattr(cause, "pgcode", None) or ""
    diag = getattr(cause, "diag", None)
    message = (getattr(diag, "message_primary", None) or str(cause or exc)).strip()
    if pgcode.startswith(_MATH_ERROR_CLASS):
        return error_response([error("expression", "math_error", message)], 422)
    if pgcode == _QUERY_CANCELED:
        return error_response(
            [
                error(
                    "expression",
                    "timeout",
                    f"the series took longer than {settings.DATAGEN_STATEMENT_TIMEOUT_MS} ms to compute ({message})",
                )
            ],
            504,
        )
    log.exception("database error")
    return error_response([error("database", "unavailable", message)], 503)


@dataclass(frozen=True)
class SeriesRequest:
    compiled: Compiled
    interval: float
    dt: float
    end: float
    width: int | None
    samples: float


def _series_request(body: dict[str, Any]) -> tuple[SeriesRequest | None, list[dict[str, Any]]]:
    """Every field of a series request checked, all problems reported together."""
    errors: list[dict[str, Any]] = []
    compiled = _compile(body.get("expression", _MISSING), errors)
    interval = _positive_number(body, "interval", "days", errors)
    dt = _positive_number(body, "dt", "hours", errors)

    end_value = body.get("end")
    end: float | None = None
    if end_value is None:
        end = time.time()
    elif isinstance(end_value, bool) or not isinstance(end_value, int | float):
        errors.append(error("end", "invalid", "end must be a number (unix seconds)"))
    else:
        try:
            end = float(end_value)
        except OverflowError:
            end = math.inf
        if not math.isfinite(end):
            errors.append(error("end", "not_finite", "end must be a finite number"))
            end = None

    width_value = body.get("width")
    width: int | None = None
    if width_value is not None:
        max_width = settings.DATAGEN_MAX_WIDTH
        if isinstance(width_value, bool) or not isinstance(width_value, int):
            errors.append(error("width", "invalid", "width must be an integer (pixels)"))
        elif not 1 <= width_value <= max_width:
            errors.append(error("width", "out_of_range", f"width must be between 1 and {max_width}"))
        else:
            width = width_value

    if errors:
        return None, errors
    assert compiled is not None and interval is not None and dt is not None and end is not None
    # The sample limits, once every field is valid.
    n = sample_count(interval, dt)
    decimated = width is not None and n > 4 * width
    max_samples = settings.DATAGEN_MAX_SAMPLES
    max_raw = settings.DATAGEN_MAX_RAW_POINTS
    if n > max_samples:
        errors.append(
            error(
                "dt",
                "too_many_samples",
                f"interval {interval:g} days at dt {dt:g} hours gives {n:g} samples; the limit is {max_samples}",
            )
        )
    elif not decimated and n > max_raw:
        errors.append(
            error(
                "dt",
                "too_many_samples",
                f"interval {interval:g} days at dt {dt:g} hours gives {n:g} samples; "
                f"at most {max_raw} are returned raw - pass width to get the M4 "
                "decimation",
            )
        )
    elif not math.isfinite(end - interval * 86400.0):
        errors.append(error("interval", "out_of_range", "end - interval reaches beyond double precision"))
    if errors:
        return None, errors
    return SeriesRequest(compiled, interval, dt, end, width, n), []


class PointsView(APIView):
    """Generate the points of a function."""

    @extend_schema(
        operation_id="points",
        request=s.PointsRequestSerializer,
        responses={
            200: s.PointsResponseSerializer,
            400: OpenApiResponse(s.ErrorsSerializer, description="invalid request"),
            415: OpenApiResponse(s.ErrorsSerializer, description="not application/json"),
            422: OpenApiResponse(s.ErrorsSerializer, description="PostgreSQL math error (message verbatim)"),
            504: OpenApiResponse(s.ErrorsSerializer, description="statement timeout"),
        },
        examples=[
            OpenApiExample(
                "t + 2/t over a day, hourly, fixed end",
                value={"expression": "t + 2/t", "interval": 1, "dt": 1, "end": 1764374400.5},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> HttpResponse:
        body, failure = _body(request)
        if failure is not None:
            return failure
        assert body is not None
        req, errors = _series_request(body)
        if req is None:
            return error_response(errors, 400)
        compiled, interval, dt, end, width = req.compiled, req.interval, req.dt, req.end, req.width

        try:
            series = generate_series_points(compiled, end=end, interval_days=interval, dt_hours=dt, width=width)
        except DatabaseError as exc:
            return _database_error(exc)
        except NonFiniteResult as exc:
            return error_response([error("expression", "math_error", str(exc))], 422)

        head = json.dumps(
            {
                "expression": compiled.expression,
                "interval": interval,
                "dt": dt,
                "start": series.start,
                "end": series.end,
                "samples": series.samples,
                "count": series.count,
                "decimated": series.decimated,
            }
        )
        # The points are JSON text built by PostgreSQL; splice them in unparsed.
        text = head[:-1] + ', "points": ' + series.points_json + "}"
        return HttpResponse(text, content_type="application/json")


class ValidateView(APIView):
    """Check an expression without generating points (for the admin form)."""

    @extend_schema(
        operation_id="validate",
        request=s.ValidateRequestSerializer,
        responses={
            200: s.ValidateResponseSerializer,
            400: OpenApiResponse(s.ErrorsSerializer, description="invalid expression"),
            415: OpenApiResponse(s.ErrorsSerializer, description="not application/json"),
        },
    )
    def post(self, request: Request) -> HttpResponse:
        body, failure = _body(request)
        if failure is not None:
            return failure
        assert body is not None
        if "interval" in body or "dt" in body:
            # The whole request of a series, as /points would check it, without running it.
            req, errors = _series_request(body)
            if req is None:
                return error_response(errors, 400)
            return JsonResponse({"expression": req.compiled.expression, "valid": True, "samples": req.samples})
        errors: list[dict[str, Any]] = []
        compiled = _compile(body.get("expression", _MISSING), errors)
        if errors or compiled is None:
            return error_response(errors, 400)
        return JsonResponse({"expression": compiled.expression, "valid": True})


def health(request: HttpRequest) -> JsonResponse:
    """200 {"status": "ok"} once PostgreSQL answers SELECT 1."""
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
    except DatabaseError as exc:
        return JsonResponse({"status": "error", "message": str(exc).strip()}, status=503)
    return JsonResponse({"status": "ok"})
