"""datagen's Prometheus metrics: requests, the one statement's time, the samples it computed.

Served by the gunicorn master on ``METRICS_PORT`` from every worker's samples
(``deploy/gunicorn.conf.py``, prometheus_client's multiprocess mode)."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import Histogram

REQUEST_SECONDS = Histogram(
    "datagen_request_seconds",
    "datagen requests by view and status code",
    ["view", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STATEMENT_SECONDS = Histogram(
    "datagen_statement_seconds",
    "Time of the one SQL statement of a series, by whether it was M4-decimated",
    ["decimated"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SAMPLES = Histogram(
    "datagen_samples",
    "Samples of the series computed",
    buckets=(10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000),
)


class RequestMetricsMiddleware:
    """Times every request; labels stay bounded (the URL pattern's name, the status code)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.url_name if match else "") or "unmatched"
        REQUEST_SECONDS.labels(view, str(response.status_code)).observe(time.perf_counter() - started)
        return response
