"""The points and render stages (the persist stage is the admin's, see pipeline.celery).

A job is a JSON dict that travels down the chain; each stage adds its output
and a trace entry. A stage never raises for a failure: it retries transient
ones with exponential backoff up to ``PIPELINE_MAX_RETRIES``, then passes the
failure on as ``job["error"]``, so the persist stage always stores a chart or
an error text. Every stage is idempotent: a redelivered message repeats work
but writes nothing twice.
"""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from billiard.process import current_process
from celery import Task

from pipeline import clients, settings, status
from pipeline.celery import POINTS_TASK, RENDER_TASK, app
from pipeline.charts import chart_options, plot_width
from pipeline.errors import StageFailure, TransientFailure

log = logging.getLogger(__name__)

Job = dict[str, Any]


def retry_delay(retries: int) -> float:
    """Seconds before retry number ``retries + 1``: 1, 2, 4, 8, ... capped."""
    return min(settings.RETRY_BACKOFF_MAX, settings.RETRY_BACKOFF * 2**retries)


def run_stage(task: Task, stage: str, state: str, job: Job, work: Callable[[Job], Job]) -> Job:
    """Run one stage of ``job`` with the pipeline's retry and failure rules."""
    if job.get("error"):
        return job  # an earlier stage failed: carry the failure to persist
    status.set_state(job["function_id"], job["run_id"], state)
    started_at = time.time()
    started = time.monotonic()
    retries = task.request.retries
    try:
        result = work(job)
    except TransientFailure as exc:
        if retries < settings.MAX_RETRIES:
            raise task.retry(exc=exc, countdown=retry_delay(retries)) from exc
        result = dict(job, error=f"{exc} (gave up after {retries} retries)")
    except StageFailure as exc:
        result = dict(job, error=str(exc))
    except Exception as exc:  # a bug must still end as readable text, not a stuck row
        log.exception("stage %s failed unexpectedly", stage)
        result = dict(job, error=f"{type(exc).__name__}: {exc}")
    if result.get("error"):
        result["error"] = f'Stage "{stage}" failed: {result["error"]}'
        result["failed_stage"] = stage
    delivery = task.request.delivery_info or {}
    result["trace"] = {
        **(job.get("trace") or {}),
        stage: {
            "queue": delivery.get("routing_key"),
            "worker": task.request.hostname,
            "started": started_at,
            "seconds": round(time.monotonic() - started, 4),
            "attempts": retries + 1,
            **result.pop("stage_info", {}),  # what the stage adds of its own, e.g. its exporter
        },
    }
    return result


def _points(job: Job) -> Job:
    width = plot_width(settings.CHART_WIDTH)
    body = clients.fetch_points(job["expression"], job["interval"], job["dt"], width)
    return dict(
        job,
        points=body["points"],
        end=body["end"],
        samples=body.get("samples"),
        decimated=body.get("decimated", False),
    )


def exporter_targets(urls: list[str]) -> list[str]:
    """Every export server behind ``urls``: a name with several addresses (a
    scaled compose service) counts once per address, so each replica is used."""
    targets = []
    for url in urls:
        parts = urlsplit(url)
        try:
            infos = socket.getaddrinfo(parts.hostname, parts.port or 80, socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            infos = []  # unresolvable now: keep the URL, the request will say why
        addresses = sorted({info[4][0] for info in infos})
        if len(addresses) <= 1:
            targets.append(url)
            continue
        targets.extend(parts._replace(netloc=f"{address}:{parts.port or 80}").geturl() for address in addresses)
    return targets


_in_flight: Counter[str] = Counter()
_in_flight_lock = threading.Lock()


@contextmanager
def exporter_lease(worker: str, attempt: int) -> Iterator[str]:
    """Pick the export server for one render and count it busy meanwhile.

    Within one worker process (a thread pool) the least busy instance wins, so
    N threads keep N single-page export servers busy without queueing behind
    each other. Ties go by the process's own starting point (its pool index
    and its worker name), so prefork processes and other hosts spread out too;
    a retry moves one instance further.
    """
    urls = exporter_targets(settings.EXPORTER_URLS)
    index = getattr(current_process(), "index", None) or 0
    start = zlib.crc32(worker.encode()) + index + attempt
    ordered = [urls[(start + i) % len(urls)] for i in range(len(urls))]
    with _in_flight_lock:
        url = min(ordered, key=lambda candidate: _in_flight[candidate])
        _in_flight[url] += 1
    try:
        yield url
    finally:
        with _in_flight_lock:
            _in_flight[url] -= 1


def _render(job: Job) -> Job:
    options = chart_options(job["expression"], job["points"], job["dt"], job["interval"])
    request = render_chart.request
    with exporter_lease(request.hostname or "", request.retries) as url:
        png = clients.render_png(url, options, settings.CHART_WIDTH, settings.CHART_HEIGHT)
    result = {key: value for key, value in job.items() if key != "points"}
    result["stage_info"] = {"exporter": url}
    result["png"] = base64.b64encode(png).decode("ascii")
    return result


# The chain hands each stage's return value to the next stage in the message
# itself; storing the points and the PNG in the result backend too would only
# cost time, so the two intermediate stages keep no result.
@app.task(name=POINTS_TASK, bind=True, max_retries=None, ignore_result=True)
def generate_points(self: Task, job: Job) -> Job:
    """Stage 1: the function's points from datagen."""
    return run_stage(self, "points", status.POINTS, job, _points)


@app.task(name=RENDER_TASK, bind=True, max_retries=None, ignore_result=True)
def render_chart(self: Task, job: Job) -> Job:
    """Stage 2: the chart's PNG from the export server."""
    return run_stage(self, "render", status.RENDERING, job, _render)
