"""Django's debug pages, kept to the machine itself and without secrets (issue 19).

With ``DJANGO_DEBUG`` on, Django answers an error (a 500, or a 400 such as a foreign
``Host`` header) with its technical page: traceback, request and settings. That page is
shown here only to a request from the machine itself (127.0.0.1 or ::1); anyone else gets
the plain error page. The settings it lists hide, beyond Django's own list (key, secret,
password, token, ...), anything that names an environment or a URL with credentials.
"""

from __future__ import annotations

import re

from django.core.exceptions import SuspiciousOperation
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

LOCAL_ADDRESSES = frozenset({"127.0.0.1", "::1"})

PLAIN_PAGES = {
    400: "<!doctype html>\n<html><head><title>Bad Request (400)</title></head><body><h1>Bad Request (400)</h1>"
    "<p></p></body></html>",
    500: "<!doctype html>\n<html><head><title>Server Error (500)</title></head><body><h1>Server Error (500)</h1>"
    "<p></p></body></html>",
}


class SecretsFilter(SafeExceptionReporterFilter):
    """Django's filter with a wider list of names to mask (settings and request META)."""

    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|ENV|URL|DSN|DATABASE|BROKER|BACKEND|CREDENTIAL",
        flags=re.IGNORECASE,
    )


def is_local(request: object) -> bool:
    """Whether the request came from the machine itself (the socket's address, never a header)."""
    meta = getattr(request, "META", None) or {}
    return meta.get("REMOTE_ADDR") in LOCAL_ADDRESSES


class LocalOnlyExceptionReporter(ExceptionReporter):
    """The technical page for local requests; the plain error page for every other one."""

    def _plain(self) -> str:
        suspicious = isinstance(self.exc_value, SuspiciousOperation)
        return PLAIN_PAGES[400 if suspicious else 500]

    def get_traceback_html(self) -> str:
        if self.request is not None and not is_local(self.request):
            return self._plain()
        return super().get_traceback_html()

    def get_traceback_text(self) -> str:
        if self.request is not None and not is_local(self.request):
            return "Bad Request (400)" if isinstance(self.exc_value, SuspiciousOperation) else "Server Error (500)"
        return super().get_traceback_text()
