"""A render retry after a transient failure at one export server goes to another one.

On the real stack (two export servers, a prefork render worker with two processes): one
export server is frozen (SIGSTOP of its process group: it accepts connections and never
answers, so each render sent to it ends in the HTTP timeout) while a batch is refreshed.
Every row must end done, drawn by the healthy server, and no row may go back to the hung
one after failing there, whichever pool process takes its retry: each row has at most two
render attempts (one at the hung server, then the healthy one).
"""

from __future__ import annotations

import signal
import time

import pytest

from functions import services
from functions.models import Function
from pipeline import settings as pipeline_settings
from tests.rows import settled
from tests.stack import http_ok, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

PRESETS = ["t + 2/t", "sin(t)", "t*t + 2/t", "cos(t / 3600) * exp(-t / 1e10)"]
# Enough rows that fresh ones are still queued when the first render sent to the hung
# server times out (PIPELINE_HTTP_TIMEOUT, 10 s here): the process that timed out takes a
# fresh row (and hangs again), so the retry is taken by the other pool process. Before the
# failing server travelled with the retry, that process's own rotation sent it back to the
# hung server (a row with 4 attempts, the batch 42 s; 22 s once it goes elsewhere).
ROWS = 90


def test_a_render_retry_after_a_hung_export_server_goes_to_the_other_one(stack):
    hung, (hung_url, healthy_url) = stack.exporters[0], stack.exporter_urls
    # A week at one-minute steps: decimated, drawn over its band (a render of about 0.2 s).
    rows = Function.objects.bulk_create(
        Function(expression=PRESETS[i % len(PRESETS)], dt=1 / 60, interval=7) for i in range(ROWS)
    )
    pks = [r.pk for r in rows]
    started = time.monotonic()
    hung.signal_group(signal.SIGSTOP)
    try:
        services.refresh_functions(rows)
        done = settled(pks, 60 + 6 * pipeline_settings.HTTP_TIMEOUT)
    finally:
        hung.signal_group(signal.SIGCONT)
        wait_until(lambda: http_ok(hung_url + "/health"), 60, f"{hung_url} after SIGCONT")
    took = time.monotonic() - started
    renders = {row.pk: row.trace.get("render", {}) for row in done}
    for row in done:
        assert row.state == Function.State.DONE, row.error
        assert renders[row.pk].get("exporter") == healthy_url, renders[row.pk]
    attempts = sorted(render["attempts"] for render in renders.values())
    print(f"{ROWS} rows settled in {took:.1f} s; render attempts {attempts}")
    assert attempts[-1] > 1, "no render met the hung export server: the fault was not felt"
    again = {pk: render for pk, render in renders.items() if render["attempts"] > 2}
    assert not again, f"a retry went back to the hung export server {hung_url}: {again}"
    for render in renders.values():  # the failing server travelled with the retry
        assert render.get("failed_exporters", []) == ([hung_url] if render["attempts"] > 1 else []), render
