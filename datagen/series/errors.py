"""Error bodies: every error is ``{"errors": [{"field", "code", "message", "params", ["position"]}]}``.

``code`` is stable (:data:`CODES` lists them, with the ``kind`` of the codes that have
several forms); ``params`` holds the numbers and names the English ``message`` is made
of, as data, so that a client words the error in its reader's language (the README's
"Error codes").

:func:`exception_handler` (DRF's ``EXCEPTION_HANDLER``) is the one place where an
exception becomes an answer: serializer errors (400), a body over the limit (413),
DRF's own (415, 405, 400 for bad JSON), the busy limit (503 with Retry-After), and PostgreSQL's errors
(422 math, 504 timeout, 503 unavailable). The JSON handlers at the end answer what
never reaches a view (404, and 500 for a bug: a JSON body, never Django's page).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from .queries import NonFiniteResult
from .slots import Busy

log = logging.getLogger(__name__)

# SQLSTATE class 22 = "data exception": division by zero, invalid argument for
# logarithm / power / sqrt, numeric value out of range, ...
_MATH_ERROR_CLASS = "22"
_QUERY_CANCELED = "57014"

# Every code an error may have -> the kinds it comes in (``params["kind"]``; "": the plain form).
# A plain literal: the admin's tests read it to check that each one has its words.
CODES: dict[str, list[str]] = {
    "syntax": ["unexpected_character", "unexpected_token", "unexpected_end", "empty", "needs_parentheses"],
    "unknown_name": [""],
    "unknown_function": [""],
    "wrong_arguments": [""],
    "too_long": [""],
    "too_deep": [""],
    "number_out_of_range": [""],
    "required": [""],
    "invalid": [""],
    "not_finite": [""],
    "not_positive": [""],
    "out_of_range": ["", "width_too_small", "beyond_double"],
    "too_many_samples": ["total", "raw"],
    "not_an_object": [""],
    "not_json": [""],
    "too_large": [""],
    "unsupported_media_type": [""],
    "method_not_allowed": [""],
    "not_acceptable": [""],
    "math_error": [""],
    "timeout": [""],
    "busy": [""],
    "unavailable": [""],
    "not_found": [""],
    "internal_error": [""],
    "bad_request": [""],
}

# PostgreSQL's words for the math errors of class 22 -> the ``reason`` parameter of ``math_error``.
MATH_REASONS: dict[str, str] = {
    "division by zero": "division_by_zero",
    "cannot take logarithm of zero": "log_of_zero",
    "cannot take logarithm of a negative number": "log_of_negative",
    "cannot take square root of a negative number": "sqrt_of_negative",
    "value out of range: overflow": "overflow",
    "value out of range: underflow": "underflow",
    "input is out of range": "argument_out_of_range",
    "zero raised to a negative power is undefined": "zero_to_negative_power",
    "a negative number raised to a non-integer power yields a complex result": "negative_to_fractional_power",
}


def error(
    field: str, code: str, message: str, position: int | None = None, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {"field": field, "code": code, "message": message, "params": dict(params or {})}
    if position is not None:
        item["position"] = position
        item["params"]["position"] = position
    return item


def math_error(message: str, sqlstate: str = "") -> dict[str, Any]:
    """``math_error`` with PostgreSQL's words as a stable ``reason`` (``other`` when they are new)."""
    params = {"reason": MATH_REASONS.get(message, "other"), "detail": message}
    if sqlstate:
        params["sqlstate"] = sqlstate
    return error("expression", "math_error", message, params=params)


def error_response(errors: list[dict[str, Any]], status: int) -> JsonResponse:
    return JsonResponse({"errors": errors}, status=status)


def validation_errors(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """``serializer.errors`` as the error list: one item per problem, in field order.

    A field's detail is a list of ``ErrorDetail`` (message + code), or a mapping
    ``{"message", "params"}`` (``series.serializers.problem``: the parameters as a JSON text)."""
    items: list[dict[str, Any]] = []
    for field, problems in detail.items():
        if isinstance(problems, dict):
            message = problems["message"]
            params = json.loads(str(problems.get("params") or "{}"))
            position = params.get("position")
            items.append(error(field, message.code, str(message), None if position is None else int(position), params))
            continue
        for problem in problems if isinstance(problems, list) else [problems]:
            items.append(error(field, getattr(problem, "code", "invalid"), str(problem)))
    return items


_DRF_CODES: dict[type[Exception], tuple[str, str]] = {
    drf_exceptions.ParseError: ("body", "not_json"),
    drf_exceptions.UnsupportedMediaType: ("body", "unsupported_media_type"),
    drf_exceptions.MethodNotAllowed: ("method", "method_not_allowed"),
    drf_exceptions.NotAcceptable: ("accept", "not_acceptable"),
}


def _database_error(exc: DatabaseError) -> Response:
    cause = exc.__cause__
    pgcode = getattr(cause, "pgcode", None) or ""
    diag = getattr(cause, "diag", None)
    message = (getattr(diag, "message_primary", None) or str(cause or exc)).strip()
    if pgcode.startswith(_MATH_ERROR_CLASS):
        return Response({"errors": [math_error(message, pgcode)]}, status=422)
    if pgcode == _QUERY_CANCELED:
        timeout = settings.DATAGEN_STATEMENT_TIMEOUT_MS
        text = f"the series took longer than {timeout} ms to compute ({message})"
        return Response({"errors": [error("expression", "timeout", text, params={"limit_ms": timeout})]}, status=504)
    log.exception("database error")
    return Response({"errors": [error("database", "unavailable", message, params={"detail": message})]}, status=503)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler that answers in the service's error format."""
    if isinstance(exc, drf_exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"body": exc.detail}
        return Response({"errors": validation_errors(detail)}, status=400)
    # Django's own check of Content-Length against DATA_UPLOAD_MAX_MEMORY_SIZE: DRF's JSON
    # parsing reads request.body, so a body over it is refused before a byte of it is read.
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        too_large = error("body", "too_large", f"the body is larger than {limit} bytes", params={"limit": limit})
        return Response({"errors": [too_large]}, status=413)
    if isinstance(exc, Busy):
        busy = error("server", "busy", str(exc), params={"retry_after": exc.retry_after})
        return Response({"errors": [busy]}, status=503, headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, NonFiniteResult):
        return Response({"errors": [math_error(str(exc))]}, status=422)
    if isinstance(exc, DatabaseError):
        return _database_error(exc)
    if isinstance(exc, drf_exceptions.APIException):
        field, code = "body", str(getattr(exc, "default_code", "error"))
        for cls, (f, c) in _DRF_CODES.items():
            if isinstance(exc, cls):
                field, code = f, c
                break
        detail = exc.detail
        message = str(detail) if not isinstance(detail, list | dict) else str(exc)
        params: dict[str, Any] = {}
        if isinstance(exc, drf_exceptions.MethodNotAllowed):
            params["method"] = context["request"].method if context.get("request") is not None else ""
        if isinstance(exc, drf_exceptions.UnsupportedMediaType):
            params["media_type"] = getattr(context.get("request"), "content_type", "")
        # A 405's Allow header is DRF's own (APIView.finalize_response sets it on every answer).
        return Response({"errors": [error(field, code, message, params=params)]}, status=exc.status_code)
    return None  # anything else is a bug in this service: handler500 answers


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(
        [error("path", "not_found", f"no such resource: {request.path}", params={"path": request.path})], 404
    )


def server_error(request: HttpRequest) -> JsonResponse:
    return error_response([error("server", "internal_error", "datagen failed; the log has the details")], 500)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response([error("request", "bad_request", "the request is malformed")], 400)
