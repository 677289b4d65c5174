"""The two kinds of stage failure; the tasks decide retry or store by kind.

A failure has an English ``message`` (stored as the row's error text) and, as data, a
stable ``code`` and its ``params`` (stored beside it: the admin words the error in its
reader's language from them, the README's "Error codes"). The code is also the metrics'
``cause`` label (:func:`pipeline.metrics.cause_label`): datagen's error code
(``math_error``, ``timeout``, ``too_many_samples``...) or one of the pipeline's own,
:data:`CODES`; empty when unknown.
"""

from __future__ import annotations

from typing import Any

# The pipeline's own failure codes and their parameters (the README's "Error codes").
CODES: dict[str, str] = {
    "no_answer": "service, url, seconds: the service did not answer in time",
    "unreachable": "service, url: no connection to the service",
    "broken_answer": "service, url: the connection broke while the answer was read",
    "datagen_http": "status: datagen answered an HTTP error without an error body",
    "export_server": "url, status, exporter_code: the export server answered an HTTP error",
    "export_server_no_png": "url: the export server answered 200 without a PNG image",
    "bad_points": "index: a point of the series is not a finite [x, y] pair",
    "no_points": "the series has no points",
    "no_image": "the render stage returned no image",
    "version": "version, expected: the message was sent by another release",
    "parked": "deaths, limit, queue: the processes running the message kept dying",
    "lost": "sends, seconds: the run was sent again and again and never reported progress",
    "database_unreachable": "PostgreSQL was unreachable when the outcome was stored",
    "bug": "exception: a bug in the pipeline (the log has the details)",
}

# datagen's error codes (its series.errors.CODES; tests/test_error_words.py checks the two agree):
# the metrics count these as they are, anything else datagen might answer is "other".
DATAGEN_CODES = frozenset(
    {
        "syntax",
        "unknown_name",
        "unknown_function",
        "wrong_arguments",
        "too_long",
        "too_deep",
        "number_out_of_range",
        "required",
        "invalid",
        "not_finite",
        "not_positive",
        "out_of_range",
        "too_many_samples",
        "not_an_object",
        "not_json",
        "too_large",
        "unsupported_media_type",
        "method_not_allowed",
        "not_acceptable",
        "math_error",
        "timeout",
        "busy",
        "unavailable",
        "not_found",
        "internal_error",
        "bad_request",
    }
)

KNOWN_CODES = frozenset(CODES) | DATAGEN_CODES


class StageFailure(Exception):
    """A failure that a retry cannot fix (bad expression, math error, 4xx)."""

    def __init__(self, message: str, cause: str = "", params: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.cause = cause
        self.params = dict(params or {})


class TransientFailure(Exception):
    """A failure that may pass (service unreachable, 5xx, datagen busy, export queue full).

    ``retry_after``: the seconds the service asked to wait (its ``Retry-After``);
    the retry policy waits at least that long (:meth:`pipeline.celery.StageTask.retry`).
    ``target``: the server that failed (an export server's URL); the retry carries it
    and goes to another server while one remains (:func:`pipeline.tasks.exporter_lease`).
    """

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        target: str | None = None,
        cause: str = "",
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.target = target
        self.cause = cause
        self.params = dict(params or {})
