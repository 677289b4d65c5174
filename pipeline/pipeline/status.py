"""The live view of runs in flight, kept in Redis and written by the stages.

Redis decides nothing: PostgreSQL holds every run's state and outcome and every
batch's progress (the admin's ``Run`` table). Redis only shows people which stage
a queued row has reached, and lets a stage skip the work of a run that a newer
one superseded (persist would discard it anyway). Every key expires after
``PIPELINE_STATUS_TTL`` seconds; every call has a short timeout, and without
Redis the work goes on.

Keys:

- ``fd:row:<function id>``: hash ``run`` (the newest run Redis knows of),
  ``queued`` (when it was queued, unix seconds, PostgreSQL's clock), ``stage``
  (its live stage), ``updated`` (unix seconds), ``note`` (the last transient
  failure, shown if the run fails). A stage of an older run never overwrites it;
  a stage of a newer run takes it over.
- ``fd:started:<task id>:<retry>``: starts of one message that have not finished
  (a start that finishes takes itself back). A message that starts again while
  earlier starts never finished had its process die under it: after
  ``PIPELINE_MAX_DELIVERIES`` such deaths it is parked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import redis
from redis.commands.core import Script

from pipeline import settings

log = logging.getLogger(__name__)

# A row's live stage, as the list shows it while the row is queued.
QUEUED = "queued"
POINTS = "points"
RENDERING = "rendering"
PERSISTING = "persisting"
# The live stage a run reaches when a stage (a task of the chain) starts.
LIVE_STAGE = {"points": POINTS, "render": RENDERING, "persist": PERSISTING}

# Start of a stage: count the start, then record the stage unless a newer run owns
# the row. Returns {superseded (0/1), earlier starts that never finished}.
_BEGIN = """
local open = redis.call('INCR', KEYS[2]) - 1
redis.call('EXPIRE', KEYS[2], ARGV[4])
local run = redis.call('HGET', KEYS[1], 'run')
if run ~= ARGV[1] then
  if run and tonumber(redis.call('HGET', KEYS[1], 'queued') or '0') > tonumber(ARGV[5]) then
    return {1, open}
  end
  redis.call('HSET', KEYS[1], 'run', ARGV[1], 'queued', ARGV[5])
  redis.call('HDEL', KEYS[1], 'note')
end
redis.call('HSET', KEYS[1], 'stage', ARGV[2], 'updated', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {0, open}
"""

# Rows queued for new runs, in one call: KEYS the rows, ARGV stage, updated, ttl, then
# (run, queued) per row. One command for a whole batch (3,000 pipelined commands per
# 1,000 rows cost 0.1 s of the sender's CPU to pack).
_START = """
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'run', ARGV[2 + 2 * i], 'queued', ARGV[3 + 2 * i], 'stage', ARGV[1], 'updated', ARGV[2])
  redis.call('HDEL', key, 'note')
  redis.call('EXPIRE', key, ARGV[3])
end
return 0
"""

# A start of a message ended: take it back (only while its count exists: a count that
# expired or was flushed is not made again, without its expiry).
_FINISHED = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DECR', KEYS[1])
end
return 0
"""

# A note on the row (the last transient failure), if the row still belongs to this run.
_NOTE = """
if redis.call('HGET', KEYS[1], 'run') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'note', ARGV[2], 'updated', ARGV[3])
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
        **settings.redis_tls(settings.STATUS_REDIS_URL),
    )


def _row_key(function_id: int) -> str:
    return f"fd:row:{function_id}"


def _started_key(delivery: str) -> str:
    return f"fd:started:{delivery}"


@dataclass(frozen=True)
class RowStatus:
    run: str
    stage: str
    updated: float
    note: str = ""


def start_runs(runs: Iterable[tuple[int, str, float]]) -> None:
    """Show rows queued for their new runs ``(function id, run id, queued at)``."""
    runs = list(runs)
    if not runs:
        return
    args: list[object] = [QUEUED, time.time(), settings.STATUS_TTL]
    for _, run_id, queued_at in runs:
        args += [run_id, queued_at]
    try:
        _script(_START)(keys=[_row_key(function_id) for function_id, _, _ in runs], args=args)
    except redis.RedisError as exc:
        log.warning("could not show %d queued runs in Redis (the stages will): %s", len(runs), exc)


@dataclass(frozen=True)
class Begin:
    superseded: bool  # a newer run owns the row: do not do the work
    deaths: int  # earlier starts of this message that never finished (0: none, or unknown)


def begin(function_id: int, run_id: str, queued_at: float, stage: str, delivery: str) -> Begin:
    """Record that a run reached live stage ``stage``; count this start of message ``delivery``.

    Redis unreachable: the work goes on (PostgreSQL decides at persist).
    """
    try:
        superseded, deaths = _script(_BEGIN)(
            keys=[_row_key(function_id), _started_key(delivery)],
            args=[run_id, stage, time.time(), settings.STATUS_TTL, queued_at],
        )
    except redis.RedisError as exc:
        log.warning("run %s: could not record stage %s of row %s: %s", run_id, stage, function_id, exc)
        return Begin(False, 0)
    return Begin(bool(superseded), int(deaths))


def finished(delivery: str) -> None:
    """A start of message ``delivery`` finished (whatever its outcome): its process did not die."""
    try:
        _script(_FINISHED)(keys=[_started_key(delivery)])
    except redis.RedisError as exc:
        log.warning("could not record the end of %s: %s", delivery, exc)


def note(function_id: int, run_id: str, text: str) -> None:
    """Keep the last transient failure of a run (shown if the run fails)."""
    try:
        _script(_NOTE)(keys=[_row_key(function_id)], args=[run_id, text[:500], time.time(), settings.STATUS_TTL])
    except redis.RedisError as exc:
        log.warning("run %s: could not record a note on row %s: %s", run_id, function_id, exc)


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
            note=value.get("note", ""),
        )
        for function_id, value in zip(ids, values, strict=True)
        if value
    }
