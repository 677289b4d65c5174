"""The local Flower (``make dev``) asks for a password (issue 19, deliverable 5).

Flower shows every task's arguments and its API can send tasks and stop workers.
``deploy/run flower`` refuses to start without ``FLOWER_BASIC_AUTH``; ``make dev``
generates one once (``deploy/lib.sh``'s ``ensure_flower_auth``, kept owner-only in
``var/flower-auth``); Flower, bound to 127.0.0.1, answers 401 without it.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import requests

from tests.stack import ROOT, Process, wait_until


def test_make_dev_generates_the_password_once_owner_only(tmp_path: Path):
    script = (
        f'source "{ROOT}/deploy/lib.sh"; ROOT="{tmp_path}"; unset FLOWER_BASIC_AUTH; '
        'ensure_flower_auth; echo "$FLOWER_BASIC_AUTH"'
    )
    first, second = (
        subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, timeout=30).stdout.strip()
        for _ in range(2)
    )
    assert re.fullmatch(r"flower:[0-9a-f]{32}", first), first
    assert second == first
    saved = tmp_path / "var" / "flower-auth"
    assert saved.read_text().strip() == first
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_the_local_flower_does_not_start_without_a_password_and_answers_401_without_it():
    unset = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    done = subprocess.run([ROOT / "deploy" / "run", "flower"], env=unset, capture_output=True, text=True, timeout=20)
    assert done.returncode == 2, done
    assert "FLOWER_BASIC_AUTH" in done.stderr

    url = f"http://127.0.0.1:{os.environ['FLOWER_PORT']}/"
    env = {**os.environ, "FLOWER_BASIC_AUTH": "flower:local-test-password"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    flower = Process("flower", ["flower"], env).start()
    try:

        def answering() -> bool:
            assert flower.running, flower.tail()
            try:
                return requests.get(url, timeout=2).status_code > 0
            except requests.ConnectionError:
                return False

        wait_until(answering, 60, "flower")
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, auth=("flower", "wrong"), timeout=10).status_code == 401
        assert requests.get(url + "api/workers", timeout=10).status_code == 401
        assert requests.get(url, auth=("flower", "local-test-password"), timeout=10).status_code == 200
    finally:
        flower.stop()
