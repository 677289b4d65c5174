"""Start and stop the real processes of the stack for the system tests.

Every process is started with the same ``deploy/run`` command that the local
runner and docker compose use, so the tests exercise the real commands.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / "var" / "test-logs" / f"slot-{os.environ.get('TEST_SLOT', '0')}"


class ProcessExited(Exception):
    """A process of the stack died while the tests waited for it."""


def wait_until(check: Callable[[], object], timeout: float, what: str, poll: float = 0.2):
    """Poll ``check`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except ProcessExited:
            raise
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last_error = exc
        time.sleep(poll)
    raise TimeoutError(f"{what} not ready after {timeout} s (last error: {last_error})")


def http_ok(url: str) -> bool:
    return requests.get(url, timeout=2).status_code == 200


def login(url: str, username: str, password: str) -> requests.Session:
    """A session signed in to the admin at ``url`` through its real login form."""
    session = requests.Session()
    session.get(url + "/admin/login/", timeout=10)
    response = session.post(
        url + "/admin/login/?next=/admin/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": "/admin/",
        },
        headers={"Referer": url + "/admin/login/"},
        timeout=10,
    )
    assert response.ok and "sessionid" in session.cookies, response.text[:500]
    return session


@dataclass
class Process:
    name: str
    args: list[str]
    env: dict[str, str]
    popen: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = LOG_DIR / f"{self.name}.log"

    def start(self) -> Process:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            [str(ROOT / "deploy" / "run"), *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches its children
        )
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 15) -> None:
        if not self.running:
            return
        self.signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.popen.wait(5)
        self.signal_group(signal.SIGKILL)  # stragglers (e.g. Chromium) of the group

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would."""
        self.signal_group(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(10)

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Stack:
    """datagen, the export servers and the three workers, on test ports (and,
    with ``extra``, e.g. ``["beat", "admin"]``, those processes too)."""

    def __init__(self, env: dict[str, str], extra: tuple[str, ...] = ()) -> None:
        self.env = env
        self.extra = {name: Process(name, [name], env) for name in extra}
        exporter_urls = env["EXPORTER_URLS"].split(",")
        self.exporters = [
            Process(f"exporter{i + 1}", ["exporter"], {**env, "EXPORTER_PORT": url.rsplit(":", 1)[1]})
            for i, url in enumerate(exporter_urls)
        ]
        self.exporter_urls = exporter_urls
        self.datagen = Process("datagen", ["datagen"], env)
        self.workers = {
            queue: Process(f"worker-{queue}", [f"worker-{queue}"], env) for queue in ("points", "render", "persist")
        }

    @property
    def processes(self) -> list[Process]:
        return [self.datagen, *self.exporters, *self.workers.values(), *self.extra.values()]

    def check_alive(self) -> None:
        dead = [p for p in self.processes if not p.running]
        if dead:
            raise ProcessExited("exited: " + "\n".join(f"{p.name}:\n{p.tail()}" for p in dead))

    def ready(self, check: Callable[[], bool]) -> Callable[[], bool]:
        def checked() -> bool:
            self.check_alive()
            return check()

        return checked

    def start(self) -> None:
        for process in self.processes:
            process.start()
        datagen_health = self.env["DATAGEN_URL"] + "/health"
        wait_until(self.ready(lambda: http_ok(datagen_health)), 60, "datagen")
        for url in self.exporter_urls:
            wait_until(self.ready(lambda url=url: http_ok(url + "/health")), 90, f"export server {url}")
        for queue in self.workers:
            self.wait_for_worker(queue)
        if "admin" in self.extra:
            admin = f"http://127.0.0.1:{self.env['ADMIN_PORT']}/admin/login/"
            wait_until(self.ready(lambda: http_ok(admin)), 60, "admin")

    def wait_for_worker(self, queue: str, timeout: float = 60) -> None:
        from kombu import Connection

        def consuming() -> bool:
            # This stack's broker (Celery's own CELERY_BROKER_URL is the test process's).
            with Connection(self.env["CELERY_BROKER_URL"], connect_timeout=2) as connection:
                return connection.default_channel.queue_declare(queue, passive=True).consumer_count > 0

        wait_until(consuming, timeout, f"{queue} worker", poll=0.5)

    def restart_worker(self, queue: str) -> None:
        process = self.workers[queue]
        process.stop()
        process.start()
        self.wait_for_worker(queue)

    def restart(self, process: Process, health_url: str) -> None:
        """Start ``process`` again (after a kill or stop) and wait until ``health_url`` answers."""
        process.stop()
        process.start()

        def answering() -> bool:
            if not process.running:  # died while starting: fail now, naming it
                raise ProcessExited(f"{process.name} exited:\n{process.tail()}")
            return http_ok(health_url)

        wait_until(answering, 90, process.name)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.processes)
