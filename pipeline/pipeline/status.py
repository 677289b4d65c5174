"""Live status of rows and batches, kept in Redis and written by the stages.

Keys (every one expires after ``PIPELINE_STATUS_TTL`` seconds):

- ``fd:row:<function id>``: hash ``run`` (the latest run Redis knows of), ``queued``
  (when that run was queued, unix seconds), ``stage`` (its live stage), ``batch``, ``updated`` (unix
  seconds), ``note`` (the last transient failure, for the sweep's reason). A stage
  of an older run never overwrites it; a stage of a newer run than Redis knows of
  (its start was not recorded, e.g. Redis was down) takes it over.
- ``fd:batch:<batch id>``: hash ``total``, ``done``, ``failed``, ``superseded``, ``started``.
- ``fd:batch:<batch id>:finished``: set of the runs already counted (a redelivered
  persist does not count twice).
- ``fd:batches``: sorted set of batch ids by start time.
- ``fd:deliveries:<task id>:<retry>``: how many times one message was delivered.

PostgreSQL is the truth, Redis a view for people: a Redis outage must not fail
a chart, so every call has a short timeout and the writers log and carry on. A
batch whose hash is gone (Redis restarted or flushed) is not shown rather than
shown wrong: its counters are only ever incremented while its hash exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import redis
from redis.commands.core import Script

from pipeline import settings

log = logging.getLogger(__name__)

# A row's live stage, as the list shows it while the row is queued (the row's state,
# queued/done/failed, is the admin's, in PostgreSQL).
SUPERSEDED = "superseded"
QUEUED = "queued"
POINTS = "points"
RENDERING = "rendering"
PERSISTING = "persisting"
DONE = "done"
FAILED = "failed"
# The live stage a run reaches when a stage (a task of the chain) starts.
LIVE_STAGE = {"points": POINTS, "render": RENDERING, "persist": PERSISTING}

BATCHES_KEY = "fd:batches"

# Start of a stage: count the delivery, then record the stage unless a newer
# run owns the row. Returns {superseded (0/1), deliveries}.
_BEGIN = """
local deliveries = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[4])
local run = redis.call('HGET', KEYS[1], 'run')
if run ~= ARGV[1] then
  if run and tonumber(redis.call('HGET', KEYS[1], 'queued') or '0') > tonumber(ARGV[5]) then
    return {1, deliveries}
  end
  redis.call('HSET', KEYS[1], 'run', ARGV[1], 'queued', ARGV[5], 'batch', ARGV[6])
  redis.call('HDEL', KEYS[1], 'note')
end
redis.call('HSET', KEYS[1], 'stage', ARGV[2], 'updated', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {0, deliveries}
"""

# A note on the row (the last transient failure), if the row still belongs to this run.
_NOTE = """
if redis.call('HGET', KEYS[1], 'run') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'note', ARGV[2], 'updated', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return 0
"""

# Count a finished run in its batch once (only while the batch's hash exists),
# then set the row's final stage (done, failed) if the row still belongs to this run.
_FINISH = """
if ARGV[5] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then
  if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
    redis.call('HINCRBY', KEYS[3], ARGV[6], 1)
  end
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'run') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'stage', ARGV[2], 'updated', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return 0
"""


@cache
def _script(body: str) -> Script:
    """A Lua script of this module, sent by its hash (EVALSHA; redis-py reloads it after a Redis restart)."""
    return client().register_script(body)


@cache
def client() -> redis.Redis:
    timeout = settings.REDIS_TIMEOUT
    return redis.Redis.from_url(
        settings.STATUS_REDIS_URL,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry_on_timeout=False,
    )


def _row_key(function_id: int) -> str:
    return f"fd:row:{function_id}"


def _batch_key(batch_id: str) -> str:
    return f"fd:batch:{batch_id}"


@dataclass(frozen=True)
class RowStatus:
    run: str
    stage: str
    updated: float
    batch: str | None = None
    note: str = ""


@dataclass(frozen=True)
class BatchStatus:
    id: str
    total: int
    done: int
    failed: int
    started: float
    superseded: int = 0

    @property
    def started_at(self) -> datetime:
        return datetime.fromtimestamp(self.started, tz=UTC)

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.superseded

    @property
    def running(self) -> bool:
        return self.finished < self.total


def start_runs(runs: Iterable[tuple[int, str, float]], batch_id: str | None) -> None:
    """Mark rows queued for their new runs ``(function id, run id, queued at)`` and open the batch, if any."""
    runs = list(runs)
    now = time.time()
    ttl = settings.STATUS_TTL
    try:
        pipe = client().pipeline(transaction=False)
        for function_id, run_id, queued_at in runs:
            key = _row_key(function_id)
            pipe.hset(
                key,
                mapping={"run": run_id, "queued": queued_at, "stage": QUEUED, "batch": batch_id or "", "updated": now},
            )
            pipe.hdel(key, "note")
            pipe.expire(key, ttl)
        if batch_id:
            key = _batch_key(batch_id)
            pipe.hset(key, mapping={"total": len(runs), "done": 0, "failed": 0, "superseded": 0, "started": now})
            pipe.expire(key, ttl)
            pipe.zadd(BATCHES_KEY, {batch_id: now})
            pipe.zremrangebyscore(BATCHES_KEY, 0, now - ttl)
            pipe.expire(BATCHES_KEY, ttl)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not record %d queued runs in Redis (the stages will): %s", len(runs), exc)


@dataclass(frozen=True)
class Begin:
    superseded: bool  # a newer run owns the row: do not do the work
    deliveries: int  # how many times this message was delivered (0: unknown)


def begin(function_id: int, run_id: str, queued_at: float, batch_id: str | None, stage: str, delivery: str) -> Begin:
    """Record that a run reached live stage ``stage``; count the delivery of message ``delivery``.

    Redis unreachable: the work goes on (PostgreSQL decides at persist).
    """
    try:
        superseded, deliveries = _script(_BEGIN)(
            keys=[_row_key(function_id), f"fd:deliveries:{delivery}"],
            args=[run_id, stage, time.time(), settings.STATUS_TTL, queued_at, batch_id or ""],
        )
    except redis.RedisError as exc:
        log.warning("run %s: could not record stage %s of row %s: %s", run_id, stage, function_id, exc)
        return Begin(False, 0)
    return Begin(bool(superseded), int(deliveries))


def note(function_id: int, run_id: str, text: str) -> None:
    """Keep the last transient failure of a run (the sweep names it if the run is lost)."""
    try:
        _script(_NOTE)(keys=[_row_key(function_id)], args=[run_id, text[:500], time.time(), settings.STATUS_TTL])
    except redis.RedisError as exc:
        log.warning("run %s: could not record a note on row %s: %s", run_id, function_id, exc)


def _finish_call(function_id: int, run_id: str, batch_id: str | None, outcome: str) -> dict[str, list[Any]]:
    batch = batch_id or ""
    return {
        "keys": [_row_key(function_id), f"fd:batch:{batch}:finished", _batch_key(batch)],
        "args": [run_id, "" if outcome == SUPERSEDED else outcome, time.time(), settings.STATUS_TTL, batch, outcome],
    }


def finish(function_id: int, run_id: str, batch_id: str | None, outcome: str) -> None:
    """Record a run's end (``done``, ``failed`` or ``superseded``): the row's final
    stage (not for superseded runs) and, once, the batch's counter. Raises
    redis.RedisError (persist retries it: the batch must count every run)."""
    _script(_FINISH)(**_finish_call(function_id, run_id, batch_id, outcome))


def finish_many(runs: Iterable[tuple[int, str, str | None]], outcome: str) -> None:
    """:func:`finish` for many runs ``(function id, run id, batch id)`` that ended alike,
    in one pipeline (redis-py checks the script is loaded first). Raises redis.RedisError."""
    pipe = client().pipeline(transaction=False)
    for function_id, run_id, batch_id in runs:
        _script(_FINISH)(**_finish_call(function_id, run_id, batch_id, outcome), client=pipe)
    pipe.execute()


def row_statuses(function_ids: Iterable[int]) -> dict[int, RowStatus]:
    """The live status of the given rows (rows Redis knows nothing of are absent)."""
    ids = list(function_ids)
    if not ids:
        return {}
    try:
        pipe = client().pipeline()
        for function_id in ids:
            pipe.hgetall(_row_key(function_id))
        values = pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not read row statuses from Redis: %s", exc)
        return {}
    return {
        function_id: RowStatus(
            run=value.get("run", ""),
            stage=value.get("stage", ""),
            updated=float(value.get("updated") or 0),
            batch=value.get("batch") or None,
            note=value.get("note", ""),
        )
        for function_id, value in zip(ids, values, strict=True)
        if value
    }


def recent_batches(limit: int = 5) -> list[BatchStatus]:
    """The most recent batches, newest first."""
    try:
        r = client()
        ids = r.zrevrange(BATCHES_KEY, 0, limit - 1)
        pipe = r.pipeline()
        for batch_id in ids:
            pipe.hgetall(_batch_key(batch_id))
        values = pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not read batches from Redis: %s", exc)
        return []
    return [
        BatchStatus(
            id=batch_id,
            total=int(value.get("total", 0)),
            done=int(value.get("done", 0)),
            failed=int(value.get("failed", 0)),
            started=float(value.get("started", 0)),
            superseded=int(value.get("superseded", 0)),
        )
        for batch_id, value in zip(ids, values, strict=True)
        if value.get("total")
    ]
