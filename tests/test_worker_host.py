"""Worker hosts (README, Adding a worker host), checked without a Docker engine.

* docker-compose.main-host.yml publishes RabbitMQ, Redis and PostgreSQL over TLS only:
  each published port is its TLS listener, no plaintext port is published, PostgreSQL
  rejects plaintext over TCP (its hba file), its clients on the main host verify it;
* docker-compose.worker-host.yml runs workers and export servers only, and every URL it
  dials on the main host uses TLS with verification (amqps://, rediss:// with
  ssl_cert_reqs=required and the CA, PostgreSQL sslmode=verify-full); no datagen, nothing
  published;
* the pipeline's TLS settings (pipeline.settings.broker_tls / redis_tls) always verify the
  server, and a rediss:// URL that asks for less is refused;
* deploy/compose/new-env (MAIN_HOST set) issues a CA and a server certificate openssl
  verifies, naming MAIN_HOST and the compose names, keys owner-only, a worker-host.env with
  only what a worker host needs, never in git or an image;
* a real Redis (redis-server on a side port, TLS only, new-env's certificate) answers the
  status client built from those settings, and refuses a client that does not trust the CA
  or dials a name the certificate does not carry.

The two-host run on a real engine is `make compose-test` (tests/compose/run.py, step 7).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
MAIN_HOST_FILE = ROOT / "docker-compose.main-host.yml"
WORKER_HOST_FILE = ROOT / "docker-compose.worker-host.yml"
NEW_ENV = ROOT / "deploy" / "compose" / "new-env"
# What a worker host runs; everything else stays on the main host.
WORKER_HOST_SERVICES = {"exporter", "worker-render", "worker-persist"}
# The backing services' TLS ports inside their containers.
TLS_TARGETS = {"rabbitmq": "5671", "redis": "6380", "postgres": "5432"}


def load(path: Path) -> dict[str, Any]:
    return YAML(typ="safe").load(path.read_text())


@pytest.fixture(scope="module")
def main_host() -> dict[str, dict[str, Any]]:
    return load(MAIN_HOST_FILE)["services"]


@pytest.fixture(scope="module")
def worker_host() -> dict[str, dict[str, Any]]:
    return load(WORKER_HOST_FILE)["services"]


def targets(service: dict[str, Any]) -> list[str]:
    """The container ports a service publishes (short syntax "ip:published:target")."""
    return [str(entry).rsplit(":", 1)[-1].split("/")[0] for entry in service.get("ports", [])]


def command_options(service: dict[str, Any]) -> dict[str, str]:
    """`--name value` and `-c name=value` pairs of a service's command."""
    command = [str(part) for part in service["command"]]
    found = {}
    for i, part in enumerate(command[:-1]):
        if part == "-c":
            name, _, value = command[i + 1].partition("=")
            found[name] = value
        elif part.startswith("--"):
            found[part[2:]] = command[i + 1]
    return found


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host path of a service's bind mounts."""
    found = {}
    for entry in service.get("volumes", []):
        host, _, container = re.sub(r":(ro|rw)$", "", entry).rpartition(":")
        found[container] = host
    return found


# ----------------------------------------------------------------------------- the main host


def test_the_main_host_publishes_only_the_tls_ports(main_host: dict[str, dict[str, Any]]) -> None:
    published = {name: targets(service) for name, service in main_host.items() if service.get("ports")}
    assert published == {name: [port] for name, port in TLS_TARGETS.items()}
    # Never the plaintext ports of RabbitMQ (5672) and Redis (6379).
    assert not {"5672", "6379"} & {port for ports in published.values() for port in ports}


def test_rabbitmqs_published_port_is_its_tls_listener(main_host: dict[str, dict[str, Any]]) -> None:
    rabbitmq = main_host["rabbitmq"]
    # tls-install copies it from /tls-in into RabbitMQ's conf.d.
    assert rabbitmq["environment"]["TLS_CONF_DIR"] == "/etc/rabbitmq/conf.d"
    conf_host_path = mounts(rabbitmq)["/tls-in/20-tls.conf"]
    conf = dict(
        line.split(" = ", 1)
        for line in (ROOT / conf_host_path).read_text().splitlines()
        if " = " in line and not line.startswith("#")
    )
    assert conf["listeners.ssl.default"] == TLS_TARGETS["rabbitmq"]
    assert "listeners.tcp.default" not in conf  # plaintext stays as the image has it: unpublished
    assert conf["ssl_options.verify"] == "verify_peer"
    # The files tls-install puts where the configuration reads them.
    assert {conf[f"ssl_options.{k}"] for k in ("cacertfile", "certfile", "keyfile")} == {
        "/run/tls/ca.crt",
        "/run/tls/server.crt",
        "/run/tls/server.key",
    }
    assert not any(version.startswith("tlsv1.1") or version == "tlsv1" for version in conf_values(conf, "versions"))


def conf_values(conf: dict[str, str], key: str) -> list[str]:
    return [value for name, value in conf.items() if name.startswith(f"ssl_options.{key}.")]


def test_redis_publishes_its_tls_port_and_keeps_its_password(main_host: dict[str, dict[str, Any]]) -> None:
    options = command_options(main_host["redis"])
    assert options["tls-port"] == TLS_TARGETS["redis"]
    assert options["tls-cert-file"] == "/run/tls/server.crt"
    assert options["tls-key-file"] == "/run/tls/server.key"
    assert "requirepass" in options
    assert "port" not in options  # 6379 as the image has it: on the main host's network only


def test_postgres_accepts_only_tls_over_tcp(main_host: dict[str, dict[str, Any]]) -> None:
    postgres = main_host["postgres"]
    options = command_options(postgres)
    assert options["ssl"] == "on"
    assert options["ssl_key_file"] == "/run/tls/server.key"
    hba = ROOT / mounts(postgres)[options["hba_file"]]
    rules = [line.split() for line in hba.read_text().splitlines() if line.strip() and not line.startswith("#")]
    tcp = [rule for rule in rules if rule[0] != "local"]
    # The first TCP rule rejects plaintext; every other TCP rule is hostssl with a password.
    assert tcp[0] == ["hostnossl", "all", "all", "all", "reject"]
    assert all(rule[0] == "hostssl" and rule[-1] == "scram-sha-256" for rule in tcp[1:])
    assert tcp[1:], "no TLS rule: nobody could connect"


def test_the_server_key_reaches_each_service_through_tls_install(main_host: dict[str, dict[str, Any]]) -> None:
    for name, user in (("postgres", "postgres"), ("rabbitmq", "rabbitmq"), ("redis", "redis")):
        service = main_host[name]
        assert service["entrypoint"][:2] == ["/tls-install", user], name
        assert service["entrypoint"][2] == "docker-entrypoint.sh", name  # the image's own, afterwards
        assert mounts(service)["/tls-install"] == "./deploy/compose/tls-install"
        assert set(mounts(service)) >= {"/tls-in/ca.crt", "/tls-in/server.crt", "/tls-in/server.key"}
        assert all(entry.endswith(":ro") for entry in service["volumes"] if "/tls" in entry), name
    assert os.access(ROOT / "deploy" / "compose" / "tls-install", os.X_OK)


def test_postgres_clients_on_the_main_host_verify_it(main_host: dict[str, dict[str, Any]]) -> None:
    base = load(ROOT / "docker-compose.yml")["services"]
    clients = {name for name, service in base.items() if "POSTGRES_HOST" in (service.get("environment") or {})}
    assert clients == {"datagen", "bootstrap", "admin", "worker-persist"}
    for name in clients:
        environment = main_host[name]["environment"]
        assert environment["PGSSLMODE"] == "verify-full", name
        assert mounts(main_host[name])[environment["PGSSLROOTCERT"]].endswith("/ca.crt"), name


def test_datagen_stays_unpublished(main_host: dict[str, dict[str, Any]]) -> None:
    assert "ports" not in main_host.get("datagen", {})


# ----------------------------------------------------------------------------- the worker host


def test_the_worker_host_runs_workers_and_export_servers_only(worker_host: dict[str, dict[str, Any]]) -> None:
    assert set(worker_host) == WORKER_HOST_SERVICES
    assert not any(service.get("ports") for service in worker_host.values()), "a worker host publishes nothing"
    # datagen is not reached: no setting of it, no URL to it.
    for name, service in worker_host.items():
        environment = service.get("environment") or {}
        assert not [key for key in environment if "DATAGEN" in key], name
        assert not [value for value in environment.values() if "datagen" in str(value)], name


def test_every_url_to_the_main_host_uses_tls_with_verification(worker_host: dict[str, dict[str, Any]]) -> None:
    for name in ("worker-render", "worker-persist"):
        environment = worker_host[name]["environment"]
        assert environment["CELERY_BROKER_URL"].startswith("amqps://"), name
        assert "${MAIN_HOST:?" in environment["CELERY_BROKER_URL"]
        assert "${RABBITMQ_TLS_HOST_PORT:-5671}" in environment["CELERY_BROKER_URL"]
        backend = environment["CELERY_RESULT_BACKEND"]
        assert backend.startswith("rediss://") and backend.endswith("?ssl_cert_reqs=required"), name
        assert "${REDIS_TLS_HOST_PORT:-6380}" in backend
        assert "PIPELINE_STATUS_REDIS_URL" not in environment  # = the result backend: TLS too
        ca = environment["PIPELINE_TLS_CA_FILE"]
        assert mounts(worker_host[name])[ca].endswith("/ca.crt"), name
    persist = worker_host["worker-persist"]["environment"]
    assert persist["PGSSLMODE"] == "verify-full"
    assert persist["POSTGRES_HOST"].startswith("${MAIN_HOST:?")
    assert persist["POSTGRES_PORT"] == "${POSTGRES_TLS_HOST_PORT:-5432}"
    assert mounts(worker_host["worker-persist"])[persist["PGSSLROOTCERT"]].endswith("/ca.crt")
    # No other URL leaves the host: the export servers are on the worker host's own network.
    render = worker_host["worker-render"]
    assert render["environment"]["EXPORTER_URLS"] == "${EXPORTER_URLS:-http://exporter:7801}"
    assert worker_host["exporter"]["networks"] == ["render"]
    assert load(WORKER_HOST_FILE)["networks"]["render"]["internal"] is True


def test_the_worker_host_uses_the_main_hosts_tls_port_defaults(main_host: dict[str, dict[str, Any]]) -> None:
    text = WORKER_HOST_FILE.read_text()
    for name, service in (("RABBITMQ", "rabbitmq"), ("REDIS", "redis"), ("POSTGRES", "postgres")):
        [published] = main_host[service]["ports"]
        default = re.search(rf"\$\{{{name}_TLS_HOST_PORT:-(\d+)\}}", published).group(1)
        assert f"${{{name}_TLS_HOST_PORT:-{default}}}" in text


# ----------------------------------------------------------------------------- the pipeline's settings


def settings_of(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` after importing pipeline.settings under `env` (a fresh process)."""
    return subprocess.run(
        [sys.executable, "-c", "from pipeline import settings\n" + code],
        cwd=ROOT / "pipeline",
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "PIPELINE_"))}, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_amqps_and_rediss_always_verify_the_server() -> None:
    result = settings_of(
        {
            "CELERY_BROKER_URL": "amqps://u:p@main.example:5671//",
            "CELERY_RESULT_BACKEND": "rediss://:p@main.example:6380/0",
            "PIPELINE_TLS_CA_FILE": "/run/tls/ca.crt",
        },
        "import ssl\n"
        "b = settings.broker_tls(settings.BROKER_URL)\n"
        "r = settings.redis_tls(settings.RESULT_BACKEND)\n"
        "assert b == {'cert_reqs': ssl.CERT_REQUIRED, 'ca_certs': '/run/tls/ca.crt', 'server_hostname': None}, b\n"
        "assert r == {'ssl_cert_reqs': ssl.CERT_REQUIRED, 'ssl_ca_certs': '/run/tls/ca.crt',"
        " 'ssl_check_hostname': True}, r\n"
        "assert settings.broker_tls('amqp://u:p@rabbitmq:5672//') is None\n"
        "assert settings.redis_tls('redis://:p@redis:6379/0') == {}\n"
        "from pipeline.celery import app\n"
        "assert app.conf.broker_use_ssl == b and app.conf.redis_backend_use_ssl == r\n"
        "from pipeline import status\n"
        "kwargs = status.client().connection_pool.connection_kwargs\n"
        "assert kwargs['ssl_cert_reqs'] == ssl.CERT_REQUIRED and kwargs['ssl_check_hostname'] is True, kwargs\n"
        "assert status.client().connection_pool.connection_class.__name__ == 'SSLConnection'\n",
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("asked", ["none", "optional", "CERT_NONE"])
def test_a_rediss_url_that_does_not_verify_is_refused(asked: str) -> None:
    for name in ("CELERY_RESULT_BACKEND", "PIPELINE_STATUS_REDIS_URL"):
        result = settings_of({name: f"rediss://:p@main.example:6380/0?ssl_cert_reqs={asked}"}, "")
        assert result.returncode != 0
        assert "must verify the server" in result.stderr and name in result.stderr


# ----------------------------------------------------------------------------- new-env's certificates


def new_env(tmp_path: Path, main_host: str, *, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MAIN_HOST": main_host, "TLS_DIR": str(tmp_path / "tls"), **(extra or {})}
    for name in ("EXPORTER_REPLICAS", "RENDER_CONCURRENCY", "POSTGRES_DB", "RABBITMQ_USER", "ADMIN_POSTGRES_USER"):
        env.pop(name, None)
    for name in ("RABBITMQ_TLS_HOST_PORT", "REDIS_TLS_HOST_PORT", "POSTGRES_TLS_HOST_PORT"):
        env.pop(name, None)
    return subprocess.run(
        [str(NEW_ENV), str(tmp_path / "env")], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30, check=True).stdout


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is not installed")
def test_new_env_issues_a_ca_and_a_server_certificate_for_main_host(tmp_path: Path) -> None:
    result = new_env(tmp_path, "192.0.2.10, main.example")
    assert result.returncode == 0, result.stderr
    tls = tmp_path / "tls"
    assert openssl("verify", "-CAfile", str(tls / "ca.crt"), str(tls / "server.crt")).strip().endswith("OK")
    sans = openssl("x509", "-in", str(tls / "server.crt"), "-noout", "-ext", "subjectAltName")
    for name in ("IP Address:192.0.2.10", "DNS:main.example", "DNS:rabbitmq", "DNS:redis", "DNS:postgres"):
        assert name in sans
    assert "TLS Web Server Authentication" in openssl(
        "x509", "-in", str(tls / "server.crt"), "-noout", "-ext", "extendedKeyUsage"
    )
    assert "CA:TRUE" in openssl("x509", "-in", str(tls / "ca.crt"), "-noout", "-ext", "basicConstraints")
    for private in ("ca.key", "server.key", "worker-host.env"):
        assert (tls / private).stat().st_mode & 0o077 == 0, f"{private} is readable by others"
    assert (tls).stat().st_mode & 0o077 == 0
    # What a worker host gets: the address and the passwords it needs, nothing else.
    handed = dict(line.split("=", 1) for line in (tls / "worker-host.env").read_text().splitlines() if "=" in line)
    assert set(handed) == {
        "MAIN_HOST",
        "RABBITMQ_PASSWORD",
        "REDIS_PASSWORD",
        "ADMIN_POSTGRES_PASSWORD",
        "DJANGO_SECRET_KEY",
    }
    assert handed["MAIN_HOST"] == "192.0.2.10"
    written = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines() if "=" in line)
    assert all(handed[name] == written[name] for name in handed if name != "MAIN_HOST")
    assert handed["REDIS_PASSWORD"] not in result.stdout + result.stderr

    # Again: the CA and the certificate stay; another MAIN_HOST re-issues the certificate only.
    ca, cert = (tls / "ca.crt").read_bytes(), (tls / "server.crt").read_bytes()
    assert new_env(tmp_path, "192.0.2.10, main.example").returncode == 0
    assert (tls / "ca.crt").read_bytes() == ca and (tls / "server.crt").read_bytes() == cert
    assert new_env(tmp_path, "198.51.100.7").returncode == 0
    assert (tls / "ca.crt").read_bytes() == ca and (tls / "server.crt").read_bytes() != cert
    assert "IP Address:198.51.100.7" in openssl(
        "x509", "-in", str(tls / "server.crt"), "-noout", "-ext", "subjectAltName"
    )


def test_new_env_without_main_host_makes_no_tls_material(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"MAIN_HOST", "EXPORTER_REPLICAS", "RENDER_CONCURRENCY"}}
    env["TLS_DIR"] = str(tmp_path / "tls")
    result = subprocess.run([str(NEW_ENV), str(tmp_path / "env")], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "tls").exists()


def test_sizing_only_adds_no_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"EXPORTER_REPLICAS", "RENDER_CONCURRENCY"}}
    result = subprocess.run(
        [str(NEW_ENV), "--sizing-only", str(tmp_path / "env")], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    names = {line.split("=", 1)[0] for line in (tmp_path / "env").read_text().splitlines()}
    assert names == {"EXPORTER_REPLICAS", "RENDER_CONCURRENCY"}


def test_the_tls_material_never_reaches_git_or_an_image() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/compose/tls/ca.key"], cwd=ROOT, capture_output=True, check=False
    )
    assert ignored.returncode == 0, "deploy/compose/tls is not git-ignored"
    assert "deploy/compose/tls" in (ROOT / ".dockerignore").read_text().splitlines()


# ----------------------------------------------------------------------------- a real TLS Redis


@pytest.fixture
def tls_redis(tmp_path: Path) -> tuple[int, Path]:
    """redis-server on a side port, TLS only (no plaintext port), new-env's certificate."""
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(server).exists() or not shutil.which("openssl"):
        pytest.skip("redis-server or openssl is not installed")
    assert new_env(tmp_path, "127.0.0.1").returncode == 0
    tls = tmp_path / "tls"
    port = 16390 + int(os.environ.get("TEST_SLOT", "0"))
    process = subprocess.Popen(
        [
            server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "127.0.0.2", "--save", "",
            "--appendonly", "no", "--requirepass", "secret", "--tls-auth-clients", "no",
            "--tls-cert-file", str(tls / "server.crt"), "--tls-key-file", str(tls / "server.key"),
            "--tls-ca-cert-file", str(tls / "ca.crt"),
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"redis-server exited: {process.stdout.read()[-1000:]}")
            context = ssl.create_default_context(cafile=str(tls / "ca.crt"))
            try:
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=1) as raw,
                    context.wrap_socket(raw, server_hostname="127.0.0.1"),
                ):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("redis-server did not accept TLS within 20 s")
        yield port, tls
    finally:
        process.terminate()
        process.wait(timeout=10)


def status_ping(url: str, ca: Path | None) -> subprocess.CompletedProcess[str]:
    """pipeline.status's own client (pipeline.settings' TLS options) pings `url`."""
    env = {"PIPELINE_STATUS_REDIS_URL": url, "PIPELINE_REDIS_TIMEOUT": "3"}
    if ca:
        env["PIPELINE_TLS_CA_FILE"] = str(ca)
    return settings_of(env, "from pipeline import status\nprint(status.client().ping())")


def test_the_status_client_verifies_a_real_tls_redis(tls_redis: tuple[int, Path]) -> None:
    port, tls = tls_redis
    ok = status_ping(f"rediss://:secret@127.0.0.1:{port}/0", tls / "ca.crt")
    assert ok.returncode == 0 and ok.stdout.strip() == "True", ok.stderr[-1500:]
    # Not trusting the CA (the system's CAs only): refused.
    untrusted = status_ping(f"rediss://:secret@127.0.0.1:{port}/0", None)
    assert untrusted.returncode != 0 and "certificate verify failed" in untrusted.stderr
    # An address the certificate does not name (the server listens there too): refused.
    wrong_name = status_ping(f"rediss://:secret@127.0.0.2:{port}/0", tls / "ca.crt")
    assert wrong_name.returncode != 0
    assert "certificate verify failed" in wrong_name.stderr or "match" in wrong_name.stderr, wrong_name.stderr[-800:]
    # Plaintext to the TLS port: no answer.
    plain = status_ping(f"redis://:secret@127.0.0.1:{port}/0", None)
    assert plain.returncode != 0
