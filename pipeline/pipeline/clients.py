"""HTTP clients of the two REST services: datagen (points) and the export server (PNG)."""

from __future__ import annotations

from typing import Any

import requests
from urllib3.exceptions import InvalidHeader, ProtocolError
from urllib3.util.retry import Retry

from pipeline import settings
from pipeline.errors import StageFailure, TransientFailure
from pipeline.logs import RUN_ID_HEADER

# The export server's own error codes that mean "busy, try again".
EXPORTER_TRANSIENT_CODES = frozenset({"EXPORT_QUEUE_FULL", "EXPORT_ACQUIRE_TIMEOUT", "EXPORT_RASTERIZATION_TIMEOUT"})
# datagen's error codes that a retry cannot fix even though they are not 4xx.
DATAGEN_PERMANENT_CODES = frozenset({"timeout"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# One connection pool per process, shared by every caller (the stages and the admin).
session = requests.Session()
# The services are the stack's own (DATAGEN_URL, EXPORTER_URLS): no proxy or .netrc
# from the environment applies, and not looking them up on every request saves
# about a tenth of the render stage's CPU.
session.trust_env = False
# Only its Retry-After parser is used (its own cap, 6 hours, is far above the retry policy's).
_RETRY_AFTER = Retry()


def run_headers(run_id: str | None) -> dict[str, str]:
    """The request headers that name the run a call works for (its lines in datagen's and the
    export server's logs carry it: README, "Logs")."""
    return {RUN_ID_HEADER: run_id} if run_id else {}


def _post(
    service: str, url: str, payload: dict[str, Any], target: str | None = None, run_id: str | None = None
) -> requests.Response:
    """POST ``payload``; a timeout, an unreachable service or an answer broken off is a
    TransientFailure (``target``: the server to name as failed, for the retry to avoid;
    ``run_id``: sent as the :data:`RUN_ID_HEADER` header)."""
    where = {"service": service, "url": url}
    try:
        return session.post(url, json=payload, timeout=settings.HTTP_TIMEOUT, headers=run_headers(run_id))
    except requests.Timeout as exc:
        message = f"{service} at {url} did not answer within {settings.HTTP_TIMEOUT:g} s ({exc})"
        params = {**where, "seconds": settings.HTTP_TIMEOUT}
        raise TransientFailure(message, target=target, cause="no_answer", params=params) from exc
    except requests.ConnectionError as exc:
        raise TransientFailure(
            f"{service} at {url} is unreachable ({exc})", target=target, cause="unreachable", params=where
        ) from exc
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError, ProtocolError) as exc:
        # The connection broke (or the body came garbled) while the answer was read:
        # the service or the network failed mid-answer, which a retry may not meet.
        raise TransientFailure(
            f"{service} at {url} broke off its answer ({exc})", target=target, cause="broken_answer", params=where
        ) from exc


def retry_after(response: requests.Response) -> float | None:
    """The seconds of a ``Retry-After`` header (delta-seconds or an HTTP date; a date
    past is 0), None without a usable one. Parsed by urllib3 (requests' own transport);
    the retry policy caps the wait (:meth:`pipeline.celery.StageTask.retry`)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(_RETRY_AFTER.parse_retry_after(value))
    except (InvalidHeader, ValueError, OverflowError):  # garbage, too many digits, a year out of range
        return None


def json_or_none(response: requests.Response) -> Any:
    """The JSON body of ``response``, None when it has none."""
    try:
        return response.json()
    except ValueError:
        return None


def fetch_points(expression: str, interval: float, dt: float, width: int, run_id: str | None = None) -> dict[str, Any]:
    """Ask datagen for the series of ``expression``, M4-decimated to ``width`` pixels (for run ``run_id``)."""
    url = f"{settings.DATAGEN_URL}/api/v1/points"
    payload = {"expression": expression, "interval": interval, "dt": dt, "width": width}
    response = _post("datagen", url, payload, run_id=run_id)
    body = json_or_none(response)
    if response.status_code == 200 and isinstance(body, dict) and "points" in body:
        return body
    errors = body.get("errors") if isinstance(body, dict) else None
    errors = [err for err in errors if isinstance(err, dict)] if isinstance(errors, list) else []
    if errors:
        detail = "; ".join(
            f"{err.get('message', '?')} (field {err.get('field', '?')}, code {err.get('code', '?')})" for err in errors
        )
        codes = {err.get("code") for err in errors}
        first = errors[0]
        cause = str(first.get("code") or "datagen_http")
        # datagen's own parameters of its first error, and where it came from (the admin words it).
        params = {**(first.get("params") if isinstance(first.get("params"), dict) else {})}
        params.update(status=response.status_code, field=str(first.get("field", "")))
    else:
        detail = response.text[:2000] or response.reason
        codes = set()
        cause, params = "datagen_http", {"status": response.status_code}
    message = f"datagen answered HTTP {response.status_code}: {detail}"
    if response.status_code >= 500 and not codes & DATAGEN_PERMANENT_CODES:
        # 503 busy (every heavy slot taken) comes with Retry-After: the retry waits that long.
        raise TransientFailure(message, retry_after=retry_after(response), cause=cause, params=params)
    raise StageFailure(message, cause=cause, params=params)


def render_png(url: str, options: dict[str, Any], width: int, height: int, run_id: str | None = None) -> bytes:
    """Render Highcharts ``options`` to a ``width`` x ``height`` PNG on export server ``url`` (for run ``run_id``)."""
    payload = {
        "type": "png",
        "infile": options,
        "width": width,
        "height": height,
        "scale": 1,
    }
    response = _post("export server", url + "/", payload, target=url, run_id=run_id)
    if response.status_code == 200 and response.content.startswith(PNG_SIGNATURE):
        return response.content
    body = json_or_none(response)
    code = body.get("errorCode") if isinstance(body, dict) else None
    text = (body.get("message") if isinstance(body, dict) else None) or response.text[:2000]
    message = f"export server {url} answered HTTP {response.status_code}"
    message += f" {code}: {text}" if code else f": {text or response.reason}"
    if response.status_code == 200:
        raise StageFailure(
            f"export server {url} answered 200 without a PNG image", cause="export_server_no_png", params={"url": url}
        )
    params = {"url": url, "status": response.status_code, "exporter_code": str(code or "")}
    if response.status_code >= 500 or response.status_code == 429 or code in EXPORTER_TRANSIENT_CODES:
        raise TransientFailure(
            message, retry_after=retry_after(response), target=url, cause="export_server", params=params
        )
    raise StageFailure(message, cause="export_server", params=params)


def ask_datagen_points(payload: dict[str, Any], stream: bool = False) -> requests.Response:
    """POST ``payload`` to datagen's ``/api/v1/points`` through this pool, as it answers
    (the admin's interactive chart and CSV; they map its statuses themselves)."""
    url = f"{settings.DATAGEN_URL}/api/v1/points"
    return session.post(url, json=payload, timeout=settings.HTTP_TIMEOUT, stream=stream)


def check_function(expression: str, interval: float, dt: float, width: int) -> dict[str, list[dict[str, Any]]]:
    """Ask datagen whether a function and its parameters make a series it can draw.

    Returns the problems by request field (``expression``, ``interval``, ``dt``),
    each datagen's error as it answered it (``code``, ``params``, ``message``), empty
    when there are none. Runs no query. Raises TransientFailure when datagen cannot be asked.
    """
    url = f"{settings.DATAGEN_URL}/api/v1/validate"
    payload = {"expression": expression, "interval": interval, "dt": dt, "width": width}
    response = _post("datagen", url, payload)
    if response.status_code == 200:
        return {}
    body = json_or_none(response)
    errors = body.get("errors") if isinstance(body, dict) else None
    if response.status_code == 400 and isinstance(errors, list) and errors:
        problems: dict[str, list[dict[str, Any]]] = {}
        for err in errors:
            if not isinstance(err, dict):
                continue
            params = err.get("params")
            problem = {
                "code": str(err.get("code", "")),
                "params": params if isinstance(params, dict) else {},
                "message": str(err.get("message", "")),
            }
            problems.setdefault(str(err.get("field", "expression")), []).append(problem)
        return problems
    raise TransientFailure(
        f"datagen answered HTTP {response.status_code}: {response.text[:500]}",
        cause="datagen_http",
        params={"status": response.status_code},
    )
