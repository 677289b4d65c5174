"""The points and render stages (the persist stage is the admin's, see pipeline.celery),
and :func:`enter_stage`, the start all three share.

A job (:class:`pipeline.jobs.Job`) travels down the chain; each stage adds its
output and a trace entry. A stage never raises for a failure: it retries
transient ones under the one retry policy (:class:`pipeline.celery.StageTask`),
then passes the failure on as ``job["error"]``, so the persist stage always
stores a chart or an error text. A stage of a run that a newer run superseded
does no work; neither does a message whose process died under it
``PIPELINE_MAX_DELIVERIES`` times (it is parked: the row fails with the reason). Every stage is idempotent:
a redelivered message repeats work but writes nothing twice.
"""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import structlog
from billiard.process import current_process

from pipeline import canvas, clients, jobs, metrics, settings, status
from pipeline.celery import PARKED_QUEUE, POINTS_TASK, RENDER_TASK, SEND_TASK, StageTask, app
from pipeline.charts import chart_options, plot_width
from pipeline.errors import StageFailure, TransientFailure
from pipeline.jobs import Job

log = logging.getLogger(__name__)
# structlog's: one event with its fields (the run's ids come from the task's context: pipeline.logs).
events = structlog.get_logger(__name__)


def delivery_key(task: StageTask) -> str:
    """One message of one attempt: the task id (derived from the run id) and its retry number."""
    return f"{task.request.id}:{task.request.retries}"


def park(task: Any, stage: str, job: dict[str, Any], deaths: int) -> str:
    """Copy a poison message to the "parked" queue (for people to look at); returns the row's reason."""
    slim = {key: value for key, value in job.items() if key not in ("points", "png")}
    try:
        with app.producer_or_acquire() as producer:
            producer.publish(
                {"task": task.name, "task_id": task.request.id, "deaths": deaths, "job": slim},
                exchange=PARKED_QUEUE.exchange,
                routing_key=PARKED_QUEUE.routing_key,
                declare=[PARKED_QUEUE],
                serializer="json",
                delivery_mode=2,
            )
    except Exception as exc:  # noqa: BLE001 - the row still fails with the reason
        log.warning("run %s: could not copy the parked message: %s", job.get("run_id"), exc)
    log.error("run %s: %s started %d times and never finished: parked", job.get("run_id"), stage, deaths)
    return (
        f"each of its {deaths} earlier starts ended with the process running it dying "
        f"(limit PIPELINE_MAX_DELIVERIES = {settings.MAX_DELIVERIES}): the message is parked in the queue "
        f'"{PARKED_QUEUE.name}", not run again'
    )


def enter_stage(task: StageTask, stage: str, job: Job) -> Job:
    """The start of every stage (points, render, persist), in one place.

    Returns ``job`` to work on, or with ``error`` set when the stage must not do
    its work (the message was sent by another release, or it is a poison message:
    ``PIPELINE_MAX_DELIVERIES`` earlier starts of it never finished because their
    process died, so it is parked), or with ``superseded`` set (a newer run owns
    the row: a shortcut only, persist decides in PostgreSQL). Records the live
    stage and counts the start in Redis (without Redis the work goes on); the
    caller calls :func:`left_stage` when the stage ends, whatever its outcome.
    """
    if job.get("version") != jobs.VERSION:  # sent by another release: fail the row, readably
        version = f"job version {job.get('version')!r} is not {jobs.VERSION}"
        if job.get("error"):
            return jobs.Job(**{**job, "cause": job.get("cause") or "version"})  # type: ignore[typeddict-item]
        params = {"stage": stage, "version": str(job.get("version")), "expected": jobs.VERSION}
        error = f'Stage "{stage}" failed: {version}'
        return jobs.Job(**{**job, "error": error, "cause": "version", "error_params": params})  # type: ignore[typeddict-item]
    run = job["run_id"]
    began = status.begin(job["function_id"], run, job["queued_at"], status.LIVE_STAGE[stage], delivery_key(task))
    if began.superseded:
        log.info("run %s: superseded by a newer run of row %s, %s skipped", run, job["function_id"], stage)
        return jobs.Job(**{**job, "superseded": True})  # type: ignore[typeddict-item]
    if began.deaths >= settings.MAX_DELIVERIES and not job.get("error"):
        reason = park(task, stage, job, began.deaths)
        metrics.stage_ended(stage, "parked", "parked")
        params = {"stage": stage, "deaths": began.deaths, "limit": settings.MAX_DELIVERIES, "queue": PARKED_QUEUE.name}
        parked = {"error": f'Stage "{stage}" failed: {reason}', "cause": "parked", "error_params": params}
        return jobs.Job(**{**job, **parked})  # type: ignore[typeddict-item]
    metrics.stage_started(stage, job, task.request, time.time())
    return job


def left_stage(task: StageTask) -> None:
    """This start of the task's message ended (done, failed or retrying): its process did not die."""
    status.finished(delivery_key(task))


def run_stage(task: StageTask, stage: str, job: Job, work: Callable[[Job], Job]) -> Job:
    """Run stage ``stage`` (points, render) of ``job`` with the pipeline's retry and failure rules."""
    if job.get("error") or job.get("superseded"):
        return job  # an earlier stage failed or the run is superseded: carry it to persist
    try:
        return _run_stage(task, stage, job, work)
    finally:
        left_stage(task)


def _run_stage(task: StageTask, stage: str, job: Job, work: Callable[[Job], Job]) -> Job:
    started_at = time.time()
    started = time.monotonic()
    entered = enter_stage(task, stage, job)
    if entered.get("superseded"):
        metrics.stage_ended(stage, "superseded")
        return entered
    if entered.get("error"):  # another version, or parked
        log.warning("run %s: %s", job.get("run_id"), entered["error"])
        return jobs.with_trace(entered, stage, jobs.trace_entry(task.request, started_at, time.monotonic() - started))
    run = job["run_id"]
    extra: dict[str, Any] = {}
    try:
        result = work(job)
        extra = result.pop("stage_info", {})  # type: ignore[typeddict-item]
    except TransientFailure as exc:
        if task.may_retry():
            status.note(job["function_id"], run, f'Stage "{stage}": {exc}')
            log.warning("run %s: %s failed, retrying: %s", run, stage, exc)
            metrics.stage_ended(stage, "retried", exc.cause, time.monotonic() - started)
            raise  # StageTask.autoretry_for: Celery retries it with backoff and jitter
        attempts, seconds = task.request.retries + 1, round(task.failing_for())
        result = dict(
            job,
            error=f"{exc} (gave up after {attempts} attempts in {seconds:.0f} s)",
            cause=exc.cause,
            error_params={**exc.params, "attempts": attempts, "retried_for": seconds},
        )
    except StageFailure as exc:
        result = dict(job, error=str(exc), cause=exc.cause, error_params=exc.params)
    except Exception as exc:  # a bug must still end as readable text, not a stuck row
        log.exception("run %s: stage %s failed unexpectedly", run, stage)
        result = dict(
            job, error=f"{type(exc).__name__}: {exc}", cause="bug", error_params={"exception": type(exc).__name__}
        )
    seconds = time.monotonic() - started
    if result.get("error"):
        result["error"] = f'Stage "{stage}" failed: {result["error"]}'
        # The failure as data (the admin words it): its code is ``cause``, and where it happened.
        result["error_params"] = {"stage": stage, **(result.get("error_params") or {})}
        log.warning("run %s: %s", run, result["error"])
        metrics.stage_ended(stage, "failed", result.get("cause"), seconds)
        events.info("stage ended", outcome="failed", cause=result.get("cause"), seconds=round(seconds, 4))
    else:
        metrics.stage_ended(stage, "done", "", seconds)
        events.info("stage ended", outcome="done", seconds=round(seconds, 4), **extra)
    entry = jobs.trace_entry(task.request, started_at, time.monotonic() - started, **extra)
    return jobs.with_trace(result, stage, entry)  # type: ignore[arg-type]


def _points(job: Job) -> Job:
    width = plot_width(settings.CHART_WIDTH)
    body = clients.fetch_points(job["expression"], job["interval"], job["dt"], width, run_id=job["run_id"])
    return jobs.Job(**{**job, "points": body["points"], "end": body["end"]})  # type: ignore[typeddict-item]


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
def exporter_lease(worker: str, attempt: int, failed: Collection[str] = ()) -> Iterator[str]:
    """Pick the export server for one render and count it busy meanwhile.

    ``failed``: the servers earlier attempts of this render failed at transiently
    (they travel with the retry, :meth:`pipeline.celery.StageTask.failed_targets`);
    none of them is picked while another server remains, whichever process or
    worker takes the retry. Within one worker process (a thread pool) the least
    busy instance wins, so N threads keep N single-page export servers busy
    without queueing behind each other. Ties go by the process's own starting
    point (its pool index and its worker name), so prefork processes and other
    hosts spread out too; a retry moves one instance further.
    """
    urls = exporter_targets(settings.EXPORTER_URLS)
    index = getattr(current_process(), "index", None) or 0
    start = zlib.crc32(worker.encode()) + index + attempt
    ordered = [urls[(start + i) % len(urls)] for i in range(len(urls))]
    candidates = [url for url in ordered if url not in failed] or ordered
    with _in_flight_lock:
        url = min(candidates, key=lambda candidate: _in_flight[candidate])
        _in_flight[url] += 1
    try:
        yield url
    finally:
        with _in_flight_lock:
            _in_flight[url] -= 1


def _render(job: Job) -> Job:
    options = chart_options(job["expression"], job["points"], job["dt"], job["interval"])
    request = render_chart.request
    failed = render_chart.failed_targets()
    with (
        exporter_lease(request.hostname or "", request.retries, failed) as url,
        metrics.EXPORTS_IN_FLIGHT.labels(url).track_inprogress(),
    ):
        png = clients.render_png(url, options, settings.CHART_WIDTH, settings.CHART_HEIGHT, run_id=job["run_id"])
    result: dict[str, Any] = {key: value for key, value in job.items() if key != "points"}
    # What the image shows, as it was drawn (tests and people check a chart against its row with it).
    drawn = {"expression": job["expression"], "dt": job["dt"], "interval": job["interval"]}
    result["stage_info"] = {"exporter": url, "drawn": drawn}
    if failed:  # the servers earlier attempts failed at, avoided by this one
        result["stage_info"]["failed_exporters"] = failed
    result["png"] = base64.b64encode(png).decode("ascii")
    return result  # type: ignore[return-value]


# The chain hands each stage's return value to the next stage in the message
# itself; storing the points and the PNG in the result backend too would only
# cost time, so the two intermediate stages keep no result.
@app.task(name=POINTS_TASK, bind=True, base=StageTask, ignore_result=True)
def generate_points(self: StageTask, job: Job) -> Job:
    """Stage 1: the function's points from datagen."""
    return run_stage(self, "points", job, _points)


@app.task(name=RENDER_TASK, bind=True, base=StageTask, ignore_result=True)
def render_chart(self: StageTask, job: Job) -> Job:
    """Stage 2: the chart's PNG from the export server."""
    return run_stage(self, "render", job, _render)


@app.task(name=SEND_TASK, bind=True, base=StageTask, autoretry_for=(Exception,), ignore_result=True)
def send_chains(self: StageTask, batch: list[Job]) -> int:
    """Send the chains of a big batch; a failed send is retried under the one policy
    (a retry or redelivery re-sends them all: every stage is idempotent and a batch
    counts each run once)."""
    canvas.send_chains(batch)
    return len(batch)
