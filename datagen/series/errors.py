"""Error bodies: every error is ``{"errors": [{"field", "code", "message", ["position"]}]}``."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response


def error(field: str, code: str, message: str, position: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"field": field, "code": code, "message": message}
    if position is not None:
        item["position"] = position
    return item


def error_response(errors: list[dict[str, Any]], status: int) -> JsonResponse:
    return JsonResponse({"errors": errors}, status=status)


_DRF_CODES: dict[type[Exception], tuple[str, str]] = {
    drf_exceptions.ParseError: ("body", "not_json"),
    drf_exceptions.UnsupportedMediaType: ("body", "unsupported_media_type"),
    drf_exceptions.MethodNotAllowed: ("method", "method_not_allowed"),
    drf_exceptions.NotAcceptable: ("accept", "not_acceptable"),
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler that answers in the service's error format."""
    if isinstance(exc, drf_exceptions.APIException):
        field, code = "body", str(getattr(exc, "default_code", "error"))
        for cls, (f, c) in _DRF_CODES.items():
            if isinstance(exc, cls):
                field, code = f, c
                break
        detail = exc.detail
        message = str(detail) if not isinstance(detail, list | dict) else str(exc)
        headers = {}
        if isinstance(exc, drf_exceptions.MethodNotAllowed):
            view = context.get("view")
            if view is not None:
                headers["Allow"] = ", ".join(view.allowed_methods)
        return Response({"errors": [error(field, code, message)]}, status=exc.status_code, headers=headers)
    return None  # anything else is a bug in this service: let Django answer 500
