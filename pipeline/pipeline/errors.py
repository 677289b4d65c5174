"""The two kinds of stage failure; the tasks decide retry or store by kind.

``cause``: the failure's class for the metrics (``pipeline.metrics``): datagen's error
code (``math_error``, ``timeout``...), ``timeout``, ``unreachable``, ``broken_answer``
or ``export_server``; empty when unknown.
"""

from __future__ import annotations


class StageFailure(Exception):
    """A failure that a retry cannot fix (bad expression, math error, 4xx)."""

    def __init__(self, message: str, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause


class TransientFailure(Exception):
    """A failure that may pass (service unreachable, 5xx, datagen busy, export queue full).

    ``retry_after``: the seconds the service asked to wait (its ``Retry-After``);
    the retry policy waits at least that long (:meth:`pipeline.celery.StageTask.retry`).
    ``target``: the server that failed (an export server's URL); the retry carries it
    and goes to another server while one remains (:func:`pipeline.tasks.exporter_lease`).
    """

    def __init__(
        self, message: str, retry_after: float | None = None, target: str | None = None, cause: str = ""
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.target = target
        self.cause = cause
