"""Rows for the system tests: made in bulk, and waited for until their latest run's outcome is stored."""

from __future__ import annotations

from functions.models import Function
from tests.stack import wait_until

PRESETS = ["t + 2/t", "sin(t)", "t*t + 2/t", "cos(t / 3600) * exp(-t / 1e10)"]


def make_rows(count: int, presets: list[str] = PRESETS) -> list[Function]:
    """``count`` rows, presets and sampling in turn, with no run yet."""
    return Function.objects.bulk_create(
        Function(expression=presets[i % len(presets)], dt=1 + i % 3, interval=1 + i % 2) for i in range(count)
    )


def settled(pks: list[int], timeout: float = 90, poll: float = 0.1) -> list[Function]:
    """The rows once each has stored the outcome of its latest run (bounded wait)."""

    def stored() -> list[Function] | None:
        rows = list(Function.objects.filter(pk__in=pks))
        final = all(r.result_run == r.run_id and r.state != Function.State.QUEUED for r in rows)
        return rows if final and len(rows) == len(set(pks)) else None

    return wait_until(stored, timeout, f"{len(pks)} rows to settle", poll=poll)
