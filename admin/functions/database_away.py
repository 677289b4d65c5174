"""PostgreSQL away: a 503 page that says so, instead of a 500 (issue 19).

Any request that meets ``OperationalError``/``InterfaceError`` (the connection refused or
broken) is answered with a short page that needs nothing from the database, with
``Retry-After``. Django opens a new connection for the next request (a broken one is
closed at the end of the request), so the admin recovers by itself once PostgreSQL is back.

:class:`DatabaseAwayMiddleware` catches it in a view or a template; :func:`server_error`,
the 500 handler, catches it where it happens in a middleware (the session, the lockout).
"""

from __future__ import annotations

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.utils.html import escape
from django.utils.translation import gettext as _
from django.views import defaults

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 10
DATABASE_ERRORS = (OperationalError, InterfaceError)


def database_away_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """The 503 page (translated; no template, no query, no session)."""
    log.warning("database not reachable (%s %s): %s", request.method, request.path, str(exc).strip()[:300])
    title = _("The database is not reachable")
    message = _("The database is not reachable; this page will work again once it is back.")
    body = (
        f'<!doctype html>\n<html lang="{escape(getattr(request, "LANGUAGE_CODE", "en"))}"><head>'
        f'<meta charset="utf-8"><title>{escape(title)}</title></head>'
        f"<body><h1>{escape(title)}</h1><p>{escape(message)}</p></body></html>\n"
    )
    response = HttpResponse(body, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseAwayMiddleware:
    """Turns a database connection error in a view (or its template) into the 503 page."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_ERRORS):
            return database_away_response(request, exception)
        return None


def server_error(request: HttpRequest, template_name: str = "500.html") -> HttpResponse:
    """Django's 500 handler, except for a database connection error (raised in a middleware): 503."""
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_ERRORS):
        return database_away_response(request, exc)
    try:
        return defaults.server_error(request, template_name)
    except Exception:  # the error page itself must not fail
        return HttpResponseServerError("<h1>Server Error (500)</h1>", content_type="text/html")
