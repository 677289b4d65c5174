"""Beat sends the sweep without the result backend: a Redis outage cannot stall it or make it
log CRITICAL "Retry limit exceeded ... result store backend".

Beat runs ``celery -A pipeline.celery beat`` (deploy/run), a process that does not know the
sweep task (the admin implements it), so it sends it by name (``app.send_task``) with the
entry's options. Unless those say ``ignore_result``, ``send_task`` first subscribes to the
task's result in the backend (``backend.on_task_call``), which retries for as long as Redis
is down. The test runs the entry through beat's own ``Scheduler.apply_entry`` in such a
process, against the real RabbitMQ test virtual host, with the result backend pointed at a
port where nothing listens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.stack import ROOT

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
SEND_AS_BEAT = """
import json, logging, time

from celery.beat import Scheduler

from pipeline.celery import SWEEP_TASK, app

logging.basicConfig(level=logging.INFO)
assert SWEEP_TASK not in app.tasks, "beat's process does not know the sweep task"
backend = app.backend
calls = []
subscribe = backend.on_task_call


def on_task_call(*args):
    calls.append(args[1])
    return subscribe(*args)


backend.on_task_call = on_task_call
scheduler = Scheduler(app)  # the app's beat_schedule, merged as beat merges it
entry = scheduler.schedule["sweep-runs"]
started = time.monotonic()
scheduler.apply_entry(entry)  # what beat's tick does with a due entry
seconds = time.monotonic() - started
print(json.dumps({"seconds": seconds, "backend_calls": calls, "options": entry.options}))
"""


def test_beat_sends_the_sweep_without_touching_the_result_backend() -> None:
    env = {**os.environ, "CELERY_RESULT_BACKEND": UNREACHABLE_REDIS, "PIPELINE_STATUS_REDIS_URL": UNREACHABLE_REDIS}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    run = subprocess.run(
        [sys.executable, "-c", SEND_AS_BEAT],
        cwd=ROOT / "pipeline",  # as deploy/run beat
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    sent = json.loads(run.stdout.strip().splitlines()[-1])
    assert sent["backend_calls"] == [], f"beat subscribed to the sweep's result: {run.stderr[-2000:]}"
    assert sent["seconds"] < 3, sent
    assert "Sending due task sweep-runs" in run.stderr
    for trouble in ("Message Error", "Retry limit exceeded", "CRITICAL", "Connection to Redis lost", "Traceback"):
        assert trouble not in run.stderr, run.stderr[-2000:]
    assert sent["options"].get("ignore_result") is True
