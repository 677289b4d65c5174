"""Own PostgreSQL, Redis and RabbitMQ instances on side ports, for the fault suite.

The machine's shared instances (5432, 6379, 5672) are never touched: the fault
tests stop, kill and restart these ones. Everything lives in one temporary
folder that :meth:`SideServices.close` removes. See
/work/shared/notes/side-services.md for how each one is run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, up: bool, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port) == up:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} on port {port} did not {'open' if up else 'close'} within {timeout} s")


def _run(args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> None:
    subprocess.run(args, check=True, env=env, timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class SideServices:
    """One PostgreSQL, one Redis and one RabbitMQ node of our own, from ``base_port``
    (with ``rabbitmq_metrics_port``: the node's rabbitmq_prometheus plugin serves there)."""

    def __init__(self, base_port: int, rabbitmq_metrics_port: int | None = None) -> None:
        self.pg_port, self.redis_port, self.amqp_port, self.dist_port = (base_port + i for i in range(4))
        self.rabbitmq_metrics_port = rabbitmq_metrics_port
        self.dir = Path(tempfile.mkdtemp(prefix=f"fd-faults-{base_port}-"))
        self.dir.chmod(0o755)
        self.node = f"fdfaults{base_port}@localhost"

    # PostgreSQL --------------------------------------------------------------

    def _as_postgres(self, *args: str, timeout: float = 60) -> None:
        _run(["runuser", "-u", "postgres", "--", *args], timeout=timeout)

    def start_postgres(self) -> None:
        data = self.dir / "pg"
        if not data.exists():
            data.mkdir()
            shutil.chown(data, "postgres", "postgres")
            self._as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        options = f"-p {self.pg_port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(data / "log"), "-o", options, "-w", "-t", "60", "start"
        )

    def stop_postgres(self, mode: str = "fast") -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "pg"), "-m", mode, "-w", "stop")

    # Redis -------------------------------------------------------------------

    def start_redis(self) -> None:
        _run(
            [
                "redis-server",
                "--port", str(self.redis_port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "yes",
                "--pidfile", str(self.dir / "redis.pid"),
                "--logfile", str(self.dir / "redis.log"),
            ]
        )  # fmt: skip
        wait_port(self.redis_port, True, 20, "Redis")

    def stop_redis(self) -> None:
        _run(["redis-cli", "-p", str(self.redis_port), "shutdown", "nosave"])
        wait_port(self.redis_port, False, 20, "Redis")

    # RabbitMQ ----------------------------------------------------------------

    def _rabbit_env(self) -> dict[str, str]:
        base = self.dir / "rabbitmq"
        base.mkdir(exist_ok=True)
        if self.rabbitmq_metrics_port:
            port = self.rabbitmq_metrics_port
            (base / "rabbitmq.conf").write_text(f"prometheus.tcp.port = {port}\nprometheus.tcp.ip = 127.0.0.1\n")
            (base / "enabled_plugins").write_text("[rabbitmq_prometheus].\n")
        else:
            (base / "rabbitmq.conf").write_text("")
            (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("")
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "HOME": str(base),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def start_rabbitmq(self) -> None:
        env = self._rabbit_env()
        _run([str(RABBITMQ_BIN / "rabbitmq-server"), "-detached"], env=env)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            ok = subprocess.run(
                [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, "-q", "await_startup"],
                env=env,
                capture_output=True,
                timeout=60,
            )
            if ok.returncode == 0 and port_open(self.amqp_port):
                return
            time.sleep(0.5)
        raise TimeoutError("RabbitMQ (side node) did not start within 90 s")

    def stop_rabbitmq(self) -> None:
        env = self._rabbit_env()
        pidfile = str(self.dir / "rabbitmq" / "rabbitmq.pid")
        _run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, "-q", "stop", pidfile], env=env, timeout=90)
        wait_port(self.amqp_port, False, 30, "RabbitMQ")

    def kill_rabbitmq(self) -> None:
        """SIGKILL the node, as a crash or an out-of-memory kill would: nothing is flushed."""
        pid = int((self.dir / "rabbitmq" / "rabbitmq.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        wait_port(self.amqp_port, False, 30, "RabbitMQ")

    # all ---------------------------------------------------------------------

    def start(self) -> SideServices:
        self.start_postgres()
        self.start_redis()
        self.start_rabbitmq()
        return self

    def close(self) -> None:
        for stop in (self.stop_rabbitmq, self.stop_redis, self.stop_postgres):
            with contextlib.suppress(Exception):
                stop()
        pidfile = self.dir / "rabbitmq" / "rabbitmq.pid"  # a node that would not stop politely
        with contextlib.suppress(Exception):
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """What points the stack at these instances."""
        return {
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": str(self.pg_port),
            "POSTGRES_USER": "postgres",
            "POSTGRES_PASSWORD": "",
            "POSTGRES_DB": "postgres",
            "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{self.amqp_port}//",
            "CELERY_RESULT_BACKEND": f"redis://127.0.0.1:{self.redis_port}/0",
            "PIPELINE_STATUS_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
        }
