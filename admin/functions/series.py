"""The points of a row, asked of datagen on the browser's behalf (the browser never talks to datagen).

A row's chart covers its *processing window*: the ``interval`` days that end at
its processing date, sampled every ``dt`` hours (``t_i = start + i*step``, the
sampling rule of datagen). Zooming asks for a part of that window: the part is
snapped outwards to the same sample grid, so a zoomed point is the very sample
the full series has, with its exact value.

It asks datagen's ``/api/v1/points`` over HTTP (no import of datagen's code)
through the pipeline's connection pool (``pipeline.api.ask_datagen_points``); the
error mapping here is the admin's own (HTTP statuses for the browser).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests
from django.utils.translation import gettext as _

from functions import messages
from functions.models import Function
from functions.numbers import sampling_problems
from pipeline import api

SECONDS_PER_DAY = 86400.0
SECONDS_PER_HOUR = 3600.0
MAX_WIDTH = 4000  # pixels a browser may ask M4 for
_NUMBER = rb"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PAIR = re.compile(rb"\[\s*(" + _NUMBER + rb")\s*,\s*(" + _NUMBER + rb")\s*\]")


class DatagenError(Exception):
    """datagen refused or could not answer; ``status`` is the HTTP status to pass on, with
    ``retry_after`` (whole seconds) when datagen is busy (503 ``busy``: every heavy slot taken)."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str = "",
        retry_after: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.retry_after = status, message, code, retry_after
        self.params = dict(params or {})  # datagen's parameters of its error (functions.messages words it)

    @property
    def words(self) -> str:
        """The error in the reader's language (the English message for a code without words)."""
        if not self.code:
            return self.message
        return messages.datagen_problem({"code": self.code, "params": self.params, "message": self.message})

    def headers(self) -> dict[str, str]:
        """The headers to answer with: ``Retry-After`` when datagen gave one."""
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


@dataclass(frozen=True)
class Window:
    """A part of a row's sample grid: samples ``first`` .. ``last`` of ``count``."""

    start: float  # t of sample 0 of the row (unix seconds)
    step: float  # seconds between samples
    count: int  # samples of the whole processing window
    first: int
    last: int

    @property
    def end_time(self) -> float:
        return self.start + self.last * self.step

    @property
    def start_time(self) -> float:
        return self.start + self.first * self.step

    @property
    def samples(self) -> int:
        return self.last - self.first + 1

    def request(self, dt: float) -> dict[str, float]:
        """datagen's ``end``/``interval``/``dt`` whose samples are exactly this window's."""
        return {
            "end": self.end_time,
            "interval": max(self.last - self.first, 1) * self.step / SECONDS_PER_DAY,
            "dt": dt,
        }


def sample_count(function: Function) -> int:
    """Samples of ``function``'s processing window (datagen's rule: both ends included); 0 for odd numbers.

    An old row may hold numbers the form now refuses (dt 1e-320, interval 1e300): no overflow here.
    """
    try:
        return math.floor(function.interval * 24.0 / function.dt + 1e-9) + 1
    except (OverflowError, ValueError, ZeroDivisionError):
        return 0


def processing_window(function: Function, start: float | None = None, end: float | None = None) -> Window:
    """The samples of ``function``'s processing window between ``start`` and ``end`` (snapped outwards)."""
    if function.processed_at is None:
        raise DatagenError(404, _("the function has no processing date yet"))
    problems = sampling_problems(function.dt, function.interval)
    if problems:  # an old row with numbers that make no sense: said, not a 500
        raise DatagenError(422, " ".join(str(message) for message in problems.values()), "out_of_range")
    step = function.dt * SECONDS_PER_HOUR
    window_end = function.processed_at.timestamp()
    count = sample_count(function)
    first_time = window_end - function.interval * SECONDS_PER_DAY
    first = 0 if start is None else max(0, min(count - 1, math.floor((start - first_time) / step)))
    last = count - 1 if end is None else max(0, min(count - 1, math.ceil((end - first_time) / step)))
    if last <= first:  # at least two samples, so the window has a length
        first, last = max(0, min(first, count - 2)), min(count - 1, max(first, 0) + 1)
    return Window(first_time, step, count, first, last)


def _errors(response: requests.Response) -> DatagenError:
    body = api.json_or_none(response)
    errors = body.get("errors") if isinstance(body, dict) else None
    params: dict[str, Any] = {}
    if errors:
        message = "; ".join(str(err.get("message", "?")) for err in errors)
        code = str(errors[0].get("code", ""))
        given = errors[0].get("params")
        params = {**(given if isinstance(given, dict) else {}), "field": str(errors[0].get("field", ""))}
    else:
        message, code = response.text[:500] or response.reason, ""
    if response.status_code == 503 and code == "busy":
        # datagen's heavy slots are all taken: the browser may ask again after Retry-After.
        wait = api.retry_after(response)
        return DatagenError(503, f"datagen: {message}", code, None if wait is None else math.ceil(wait), params)
    status = response.status_code if 400 <= response.status_code < 500 else 502
    return DatagenError(status, f"datagen: {message}", code, params=params)


def _post(payload: dict[str, Any], stream: bool = False) -> requests.Response:
    try:
        response = api.ask_datagen_points(payload, stream=stream)
    except requests.RequestException as exc:
        raise DatagenError(502, _("datagen could not be asked: %(reason)s") % {"reason": exc}) from exc
    if response.status_code != 200:
        raise _errors(response)
    return response


def _payload(function: Function, window: Window, width: int | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"expression": function.expression, **window.request(function.dt)}
    if width is not None:
        payload["width"] = max(1, min(MAX_WIDTH, width))
    return payload


def window_points(function: Function, window: Window, width: int | None) -> dict[str, Any]:
    """datagen's answer for ``window``: raw samples, or M4 at ``width`` pixels when there are more."""
    body = _post(_payload(function, window, width)).json()
    if not isinstance(body, dict) or not isinstance(body.get("points"), list):
        raise DatagenError(502, _("datagen answered without points"))
    return body


def stream_points(function: Function, window: Window, width: int | None) -> Iterator[tuple[bytes, bytes]]:
    """The points of ``window`` as (t, y) number texts, read from datagen's answer as it arrives.

    Raises DatagenError before the first point when datagen refuses (e.g. too
    many samples to return raw: the message says so).
    """
    response = _post(_payload(function, window, width), stream=True)

    def pairs() -> Iterator[tuple[bytes, bytes]]:
        with response:
            buffer = b""
            seen_points = False
            for chunk in response.iter_content(chunk_size=65536):
                buffer += chunk
                if not seen_points:
                    at = buffer.find(b'"points"')
                    if at < 0:
                        continue
                    seen_points, buffer = True, buffer[at + len(b'"points"') :]
                end = 0
                for match in _PAIR.finditer(buffer):
                    end = match.end()
                    yield match.group(1), match.group(2)
                buffer = buffer[end:]

    return pairs()
