"""The admin's data views of a function: the chart image, live rows, points and CSV.

Reached through ``FunctionAdmin.get_urls`` (admin URL names ``functions_function_chart``,
``_live_rows``, ``_points``, ``_csv``), behind the admin site's login; each view checks the
model admin's view permission and gets the model admin as ``model_admin`` (the URL's extra
keyword). The views only parse the query and shape the answer: reads come from
``functions.selectors``, series from ``functions.series``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from datetime import UTC, datetime

from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.utils import formats
from django.views.decorators.http import condition

from functions import selectors, series
from functions.models import Function

# How long a browser keeps a versioned chart URL (?v=<result_run>): a year.
CHART_MAX_AGE = 365 * 24 * 3600

MAX_LIVE_ROWS = 500


class BadQuery(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message

    def response(self) -> JsonResponse:
        return JsonResponse({"errors": [{"field": self.field, "message": self.message}]}, status=400)


def _query_number(request: HttpRequest, name: str) -> float | None:
    """An optional finite number from the query string; a clear 400 naming the field otherwise."""
    text = request.GET.get(name)
    if text in (None, ""):
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise BadQuery(name, f"{name} must be a finite number (unix seconds or pixels), not {text[:40]!r}")
    return value


def _require_view_permission(model_admin: ModelAdmin, request: HttpRequest) -> None:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied


# The chart image ------------------------------------------------------------------


def chart_view(request: HttpRequest, pk: int, *, model_admin: ModelAdmin) -> HttpResponse:
    # Permission first: the conditional answer (304/412) must not tell a user
    # without view permission that a chart exists.
    _require_view_permission(model_admin, request)
    return _chart_response(request, pk)


@condition(etag_func=lambda request, pk: selectors.chart_etag(pk))
def _chart_response(request: HttpRequest, pk: int) -> HttpResponse:
    chart = selectors.function_chart(pk)
    if chart is None:
        raise Http404
    response = HttpResponse(chart.png, content_type="image/png")
    if request.GET.get("v") == chart.etag:
        # The list and the detail page link ?v=<result_run>: that URL's bytes never
        # change (a new run is a new URL), so the browser keeps it without asking.
        response["Cache-Control"] = f"private, max-age={CHART_MAX_AGE}, immutable"
    else:
        response["Cache-Control"] = "private, no-cache"
    return response


# Live rows, points and CSV ----------------------------------------------------------


def live_rows_view(request: HttpRequest, *, model_admin: ModelAdmin) -> JsonResponse:
    """The live columns of the given rows (``?ids=1,2``), rendered as the list renders them.

    The list's script polls this while rows are in flight; a reload shows the
    same cells, since both come from the same display methods (the model admin's
    ``live_columns``).
    """
    _require_view_permission(model_admin, request)
    text = request.GET.get("ids", "")
    try:
        ids = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        return BadQuery("ids", "ids must be comma separated row ids").response()
    if len(ids) > MAX_LIVE_ROWS:
        return BadQuery("ids", f"at most {MAX_LIVE_ROWS} ids").response()
    rows = selectors.rows_with_live_stage(ids)
    payload = {
        "rows": [
            {
                "id": row.pk,
                "in_progress": row.in_progress,
                "cells": {name: str(getattr(model_admin, name)(row) or "—") for name in model_admin.live_columns},
            }
            for row in rows
        ],
        "batches": render_to_string(
            "admin/functions/function/batches.html", {"batches": selectors.recent_batches()}, request
        ),
    }
    return JsonResponse(payload)


def _window(model_admin: ModelAdmin, request: HttpRequest, pk: int) -> tuple[Function, series.Window, int | None]:
    _require_view_permission(model_admin, request)
    function = get_object_or_404(Function, pk=pk)
    start, end = _query_number(request, "start"), _query_number(request, "end")
    width = _query_number(request, "width")
    if width is not None and not 1 <= width <= series.MAX_WIDTH:
        raise BadQuery("width", f"width must be between 1 and {series.MAX_WIDTH} pixels")
    if start is not None and end is not None and end <= start:
        raise BadQuery("end", "end must be after start")
    return function, series.processing_window(function, start, end), None if width is None else int(width)


def points_view(request: HttpRequest, pk: int, *, model_admin: ModelAdmin) -> JsonResponse:
    """The points of a row's processing window, or of a part of it (zoom), M4 at ``width`` pixels."""
    try:
        function, window, width = _window(model_admin, request, pk)
        body = series.window_points(function, window, width or 1000)
    except BadQuery as exc:
        return exc.response()
    except series.DatagenError as exc:
        return JsonResponse(
            {"errors": [{"field": "datagen", "message": exc.words}]}, status=exc.status, headers=exc.headers()
        )
    return JsonResponse(
        {
            "start": window.start_time,
            "end": window.end_time,
            "samples": window.samples,
            "decimated": bool(body.get("decimated")),
            "points": body["points"],
        }
    )


def csv_view(request: HttpRequest, pk: int, *, model_admin: ModelAdmin) -> HttpResponse:
    """The row's points as CSV, streamed: raw up to datagen's raw limit; ``?m4=<pixels>`` for M4."""
    try:
        function, window, _width = _window(model_admin, request, pk)
        m4 = _query_number(request, "m4")
        if m4 is not None and not 1 <= m4 <= series.MAX_WIDTH:
            raise BadQuery("m4", f"m4 must be between 1 and {series.MAX_WIDTH} pixels")
        pairs = series.stream_points(function, window, None if m4 is None else int(m4))
    except BadQuery as exc:
        return exc.response()
    except series.DatagenError as exc:
        if exc.code != "too_many_samples":
            return HttpResponse(
                exc.words, status=exc.status, content_type="text/plain; charset=utf-8", headers=exc.headers()
            )
        query = request.GET.copy()
        query["m4"] = "2000"
        m4_url = f"{request.path}?{query.urlencode()}"
        return HttpResponse(
            render_to_string(
                "admin/functions/function/csv_refused.html",
                {
                    **model_admin.admin_site.each_context(request),  # the site's header, as every admin page
                    "function": function,
                    "message": exc.words,
                    "m4_url": m4_url,
                    "samples": formats.number_format(window.samples, force_grouping=True),
                },
                request,
            ),
            status=409,
        )
    name = f"function-{function.pk}-{'m4' if m4 is not None else 'raw'}.csv"
    response = StreamingHttpResponse(_csv_rows(pairs), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _csv_rows(pairs: Iterator[tuple[bytes, bytes]]) -> Iterator[str]:
    """CSV lines ``t_unix,t_utc,y``; numbers exactly as datagen (PostgreSQL) wrote them."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["t_unix_seconds", "t_utc", "y"])
    yield out.getvalue()
    batch: list[str] = []
    for t, y in pairs:
        moment = datetime.fromtimestamp(float(t), tz=UTC)
        batch.append(f"{t.decode()},{moment:%Y-%m-%dT%H:%M:%S.%fZ},{y.decode()}\n")
        if len(batch) >= 5000:
            yield "".join(batch)
            batch.clear()
    if batch:
        yield "".join(batch)
