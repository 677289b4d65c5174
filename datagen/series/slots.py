"""Heavy work bounded in total: at most DATAGEN_HEAVY_SLOTS big series are computed at once.

A series with more than DATAGEN_HEAVY_SAMPLES samples needs a heavy slot, and so does a
raw (undecimated) one with more than DATAGEN_HEAVY_RAW_POINTS: a raw answer costs more
per sample (PostgreSQL writes every point as JSON text, and the answer is sent whole:
1 M raw points take about 4 times as long as 1 M samples decimated). A slot is
a PostgreSQL transaction-level advisory lock, ``pg_try_advisory_xact_lock(key, slot)``
taken without waiting in the transaction that runs the series statement, so:

* the limit holds for every gunicorn worker and thread and every replica that uses
  the same database (advisory locks are per database), with no extra process;
* a slot is freed when the transaction ends: success, error, statement timeout, or
  a worker that dies (PostgreSQL ends its session);
* when every slot is taken the request is answered at once with 503 ``busy`` and
  ``Retry-After``, so it does not hold a worker: light requests (``/validate``,
  small series) keep finding a free worker while the heavy ones run.

Advisory locks need no table privilege, so the service's least-privilege role can
take them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection, transaction

# The first key of the two-key advisory lock: the ASCII of "DGEN". The second is the slot number.
HEAVY_LOCK_KEY = 0x4447454E


class Busy(Exception):
    """Every heavy slot is taken; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def heavy_limit(decimated: bool) -> int:
    """The most samples a series may have and still be light: decimated (M4) or raw."""
    return settings.DATAGEN_HEAVY_SAMPLES if decimated else settings.DATAGEN_HEAVY_RAW_POINTS


def is_heavy(samples: int, decimated: bool) -> bool:
    return samples > heavy_limit(decimated)


@contextmanager
def heavy_slot(samples: int, decimated: bool) -> Iterator[None]:
    """Run the body holding a heavy slot if the series is heavy (``samples``, raw or
    ``decimated``); raise Busy when none is free."""
    if not is_heavy(samples, decimated):
        yield
        return
    slots = settings.DATAGEN_HEAVY_SLOTS
    with transaction.atomic():
        with connection.cursor() as cur:
            for slot in range(slots):
                cur.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [HEAVY_LOCK_KEY, slot])
                if cur.fetchone()[0]:
                    break
            else:
                raise Busy(
                    f"{slots} heavy series (more than {settings.DATAGEN_HEAVY_SAMPLES} samples, or "
                    f"{settings.DATAGEN_HEAVY_RAW_POINTS} raw points) are being computed; "
                    f"retry in {settings.DATAGEN_RETRY_AFTER} s",
                    settings.DATAGEN_RETRY_AFTER,
                )
        yield
