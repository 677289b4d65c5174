"""HTTP views, thin: the serializer validates, the one statement computes, the answer is written.

Errors are answered by :func:`series.errors.exception_handler`.
"""

from __future__ import annotations

import json
import time

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import metrics
from . import serializers as s
from .queries import Series, decimates, generate_series_points
from .slots import heavy_slot

_ERRORS = {
    400: OpenApiResponse(s.ErrorsSerializer, description="invalid request: every field's problem"),
    413: OpenApiResponse(s.ErrorsSerializer, description="body over 64 KiB"),
    415: OpenApiResponse(s.ErrorsSerializer, description="not application/json"),
}


def points_response(req: s.SeriesRequest, series: Series) -> HttpResponse:
    """The /points answer: the head from PointsHeadSerializer, the points as PostgreSQL wrote them.

    On purpose, for speed: PostgreSQL builds the JSON text of the points (up to
    DATAGEN_MAX_RAW_POINTS pairs) and it is spliced in unparsed, as the last member,
    so Python never touches a point (parsing and re-encoding them costs more than
    computing them; see the README). Nothing else in the service writes JSON by hand.
    """
    head = s.PointsHeadSerializer(
        {
            "expression": req.compiled.expression,
            "interval": req.interval,
            "dt": req.dt,
            "start": series.start,
            "end": series.end,
            "samples": series.samples,
            "count": series.count,
            "decimated": series.decimated,
        }
    ).data
    text = json.dumps(head)[:-1] + ', "points": ' + series.points_json + "}"
    return HttpResponse(text, content_type="application/json")


class PointsView(APIView):
    """Generate the points of a function."""

    @extend_schema(
        operation_id="points",
        request=s.PointsRequestSerializer,
        responses={
            200: s.PointsResponseSerializer,
            **_ERRORS,
            422: OpenApiResponse(s.ErrorsSerializer, description="PostgreSQL math error (message verbatim)"),
            503: OpenApiResponse(
                s.ErrorsSerializer, description="busy: every heavy slot taken (Retry-After), or database unavailable"
            ),
            504: OpenApiResponse(s.ErrorsSerializer, description="statement timeout"),
        },
        parameters=[
            OpenApiParameter(
                "Retry-After",
                int,
                OpenApiParameter.HEADER,
                response=[503],
                description="with code busy: seconds to wait before asking again",
            )
        ],
        examples=[
            OpenApiExample(
                "t + 2/t over a day, hourly, fixed end",
                value={"expression": "t + 2/t", "interval": 1, "dt": 1, "end": 1764374400.5},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> HttpResponse:
        serializer = s.PointsRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        req: s.SeriesRequest = serializer.validated_data
        with heavy_slot(req.samples, decimates(req.samples, req.width)):
            started = time.perf_counter()
            series = generate_series_points(
                req.compiled, end=req.end, interval_days=req.interval, dt_hours=req.dt, width=req.width
            )
            metrics.STATEMENT_SECONDS.labels(str(series.decimated).lower()).observe(time.perf_counter() - started)
        metrics.SAMPLES.observe(series.samples)
        return points_response(req, series)


class ValidateView(APIView):
    """Check a request without running a query: the expression alone, or with interval and dt the whole series."""

    @extend_schema(
        operation_id="validate",
        request=PolymorphicProxySerializer(
            component_name="ValidateRequest",
            serializers=[s.ExpressionRequestSerializer, s.PointsRequestSerializer],
            resource_type_field_name=None,
        ),
        responses={200: s.ValidateResponseSerializer, **_ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = s.validate_request_serializer(request.data)
        serializer.is_valid(raise_exception=True)
        valid = serializer.validated_data
        if isinstance(valid, s.SeriesRequest):
            answer = {"expression": valid.compiled.expression, "valid": True, "samples": valid.samples}
        else:
            answer = {"expression": valid.expression, "valid": True}
        return Response(s.ValidateResponseSerializer(answer).data)


def health(request: HttpRequest) -> JsonResponse:
    """200 {"status": "ok"} once PostgreSQL answers SELECT 1."""
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
    except DatabaseError as exc:
        return JsonResponse({"status": "error", "message": str(exc).strip()}, status=503)
    return JsonResponse({"status": "ok"})
