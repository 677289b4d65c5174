"""Live status of rows and batches, kept in Redis and written by the stages.

Keys (all expire after ``PIPELINE_STATUS_TTL`` seconds):

- ``fd:row:<function id>``: hash ``run`` (the latest run id), ``state``, ``batch``,
  ``updated`` (unix seconds). A stage of an older run never overwrites it.
- ``fd:batch:<batch id>``: hash ``total``, ``done``, ``failed``, ``started``.
- ``fd:batch:<batch id>:finished``: set of the runs already counted (a redelivered
  persist does not count twice).
- ``fd:batches``: sorted set of batch ids by start time.

Status is a view for people: a Redis outage must not fail a chart, so the
writers log and carry on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import redis

from pipeline import settings

log = logging.getLogger(__name__)

QUEUED = "queued"
POINTS = "points"
RENDERING = "rendering"
PERSISTING = "persisting"
DONE = "done"
FAILED = "failed"

BATCHES_KEY = "fd:batches"

# Set the row's state only if the row still belongs to this run.
_SET_IF_RUN = """
if redis.call('HGET', KEYS[1], 'run') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', ARGV[2], 'updated', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  return 1
end
return 0
"""

# Count a finished run in its batch once, then set the row's final state as above.
_FINISH = (
    """
if ARGV[5] ~= '' then
  if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
    redis.call('HINCRBY', KEYS[3], ARGV[6], 1)
  end
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
"""
    + _SET_IF_RUN
)


@cache
def client() -> redis.Redis:
    return redis.Redis.from_url(settings.STATUS_REDIS_URL, decode_responses=True)


def _row_key(function_id: int) -> str:
    return f"fd:row:{function_id}"


def _batch_key(batch_id: str) -> str:
    return f"fd:batch:{batch_id}"


@dataclass(frozen=True)
class RowStatus:
    run: str
    state: str
    updated: float
    batch: str | None = None


@dataclass(frozen=True)
class BatchStatus:
    id: str
    total: int
    done: int
    failed: int
    started: float

    @property
    def started_at(self) -> datetime:
        return datetime.fromtimestamp(self.started, tz=UTC)

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def running(self) -> bool:
        return self.finished < self.total


def start_runs(runs: Iterable[tuple[int, str]], batch_id: str | None) -> None:
    """Mark rows queued for their new runs (and open the batch, if any)."""
    runs = list(runs)
    now = time.time()
    ttl = settings.STATUS_TTL
    try:
        pipe = client().pipeline()
        for function_id, run_id in runs:
            key = _row_key(function_id)
            pipe.hset(
                key,
                mapping={"run": run_id, "state": QUEUED, "batch": batch_id or "", "updated": now},
            )
            pipe.expire(key, ttl)
        if batch_id:
            key = _batch_key(batch_id)
            pipe.hset(key, mapping={"total": len(runs), "done": 0, "failed": 0, "started": now})
            pipe.expire(key, ttl)
            pipe.zadd(BATCHES_KEY, {batch_id: now})
            pipe.zremrangebyscore(BATCHES_KEY, 0, now - ttl)
        pipe.execute()
    except redis.RedisError:
        log.exception("could not record queued runs in Redis")


def set_state(function_id: int, run_id: str, state: str) -> None:
    """Record the stage a run has reached (ignored if a newer run took the row)."""
    try:
        client().eval(_SET_IF_RUN, 1, _row_key(function_id), run_id, state, time.time(), settings.STATUS_TTL)
    except redis.RedisError:
        log.exception("could not record state %s of row %s", state, function_id)


def finish(function_id: int, run_id: str, batch_id: str | None, ok: bool) -> None:
    """Record a run's end: the row's final state and, once, the batch's counter."""
    batch = batch_id or ""
    try:
        client().eval(
            _FINISH,
            3,
            _row_key(function_id),
            f"fd:batch:{batch}:finished",
            _batch_key(batch),
            run_id,
            DONE if ok else FAILED,
            time.time(),
            settings.STATUS_TTL,
            batch,
            "done" if ok else "failed",
        )
    except redis.RedisError:
        log.exception("could not record the end of run %s of row %s", run_id, function_id)


def row_states(function_ids: Iterable[int]) -> dict[int, RowStatus]:
    """The live status of the given rows (rows Redis knows nothing of are absent)."""
    ids = list(function_ids)
    if not ids:
        return {}
    try:
        pipe = client().pipeline()
        for function_id in ids:
            pipe.hgetall(_row_key(function_id))
        values = pipe.execute()
    except redis.RedisError:
        log.exception("could not read row states from Redis")
        return {}
    return {
        function_id: RowStatus(
            run=value.get("run", ""),
            state=value.get("state", ""),
            updated=float(value.get("updated") or 0),
            batch=value.get("batch") or None,
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
    except redis.RedisError:
        log.exception("could not read batches from Redis")
        return []
    return [
        BatchStatus(
            id=batch_id,
            total=int(value.get("total", 0)),
            done=int(value.get("done", 0)),
            failed=int(value.get("failed", 0)),
            started=float(value.get("started", 0)),
        )
        for batch_id, value in zip(ids, values, strict=True)
        if value
    ]
