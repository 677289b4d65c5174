"""deploy/sizing: the one rule for how many export servers and render processes a machine gets.

`make dev` (deploy/dev.sh) and compose (deploy/compose/new-env writes EXPORTER_REPLICAS and
RENDER_CONCURRENCY to .env) both take it from there; the benchmark too. The machine is faked
with SIZING_CORES / SIZING_AVAILABLE_MB, so the rule is checked for any machine.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SIZING = ROOT / "deploy" / "sizing"
NEW_ENV = ROOT / "deploy" / "compose" / "new-env"
NAMES = ("EXPORTER_INSTANCES", "RENDER_CONCURRENCY", "SIZING_CORES", "SIZING_AVAILABLE_MB")
OVERRIDES = ("EXPORTER_INSTANCES", "RENDER_CONCURRENCY", "SIZING_CORES", "SIZING_AVAILABLE_MB", "EXPORTER_REPLICAS")


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    return env | values


def sizing(**values: str) -> dict[str, int]:
    result = subprocess.run([str(SIZING)], env=clean_env(**values), capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split("=")[0] for line in lines] == list(NAMES), result.stdout
    return {name: int(value) for name, value in (line.split("=", 1) for line in lines)}


def rule_numbers() -> dict[str, int]:
    """The rule's numbers, from the block at the top of deploy/sizing (tuned there only)."""
    text = SIZING.read_text()
    block = text[text.index("# ---- The rule's numbers") : text.index("# ----\n")]
    return {name: int(value) for name, value in re.findall(r"^([A-Z_]+)=(\d+)$", block, re.MULTILINE)}


def test_the_rules_numbers_are_in_one_block_at_the_top() -> None:
    numbers = rule_numbers()
    assert set(numbers) == {"INSTANCES_PER_CORE", "RESERVED_MB", "MB_PER_INSTANCE", "RENDER_PER_INSTANCE"}
    # Nowhere else: the runners call deploy/sizing instead of computing.
    for path in ("deploy/dev.sh", "deploy/compose/new-env", "tests/bench_pipeline.py", "tests/compose/run.py"):
        text = (ROOT / path).read_text()
        assert "deploy/sizing" in text or 'deploy" / "sizing"' in text, path
        assert "MemAvailable" not in text and "nproc" not in text, f"{path} sizes the machine itself"


@pytest.mark.parametrize(
    ("cores", "available_mb"),
    [(1, 4096), (2, 22000), (2, 3000), (8, 4000), (8, 64000), (4, 1000), (16, 2406), (16, 2405)],
)
def test_the_rule(cores: int, available_mb: int) -> None:
    n = rule_numbers()
    by_memory = (available_mb - n["RESERVED_MB"]) // n["MB_PER_INSTANCE"]
    instances = max(1, min(n["INSTANCES_PER_CORE"] * cores, by_memory))
    got = sizing(SIZING_CORES=str(cores), SIZING_AVAILABLE_MB=str(available_mb))
    assert got == {
        "EXPORTER_INSTANCES": instances,
        "RENDER_CONCURRENCY": n["RENDER_PER_INSTANCE"] * instances,
        "SIZING_CORES": cores,
        "SIZING_AVAILABLE_MB": available_mb,
    }


def test_the_current_numbers() -> None:
    """The values README's Scaling section describes (until they are tuned)."""
    assert sizing(SIZING_CORES="2", SIZING_AVAILABLE_MB="20000")["EXPORTER_INSTANCES"] == 2
    assert sizing(SIZING_CORES="2", SIZING_AVAILABLE_MB="20000")["RENDER_CONCURRENCY"] == 4
    assert sizing(SIZING_CORES="8", SIZING_AVAILABLE_MB="3276")["EXPORTER_INSTANCES"] == 2  # memory-bound
    assert sizing(SIZING_CORES="8", SIZING_AVAILABLE_MB="1000")["EXPORTER_INSTANCES"] == 1  # at least one


def test_the_machine_itself() -> None:
    got = sizing()
    assert got["SIZING_CORES"] == len(os.sched_getaffinity(0))
    meminfo = Path("/proc/meminfo").read_text()
    available = int(re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.MULTILINE).group(1)) // 1024
    assert abs(got["SIZING_AVAILABLE_MB"] - available) < 512
    assert got["EXPORTER_INSTANCES"] >= 1


def test_the_environment_wins() -> None:
    base = {"SIZING_CORES": "2", "SIZING_AVAILABLE_MB": "20000"}
    assert sizing(**base, EXPORTER_INSTANCES="3") == {
        "EXPORTER_INSTANCES": 3,
        "RENDER_CONCURRENCY": 3 * rule_numbers()["RENDER_PER_INSTANCE"],
        "SIZING_CORES": 2,
        "SIZING_AVAILABLE_MB": 20000,
    }
    assert sizing(**base, RENDER_CONCURRENCY="5")["RENDER_CONCURRENCY"] == 5
    assert sizing(**base, RENDER_CONCURRENCY="5")["EXPORTER_INSTANCES"] == 2
    # Blank means the rule (the settings' rule everywhere).
    assert sizing(**base, EXPORTER_INSTANCES=" ", RENDER_CONCURRENCY="")["EXPORTER_INSTANCES"] == 2


@pytest.mark.parametrize(
    ("name", "value"), [("EXPORTER_INSTANCES", "0"), ("EXPORTER_INSTANCES", "two"), ("RENDER_CONCURRENCY", "-1")]
)
def test_a_bad_override_stops_it_naming_the_variable(name: str, value: str) -> None:
    result = subprocess.run([str(SIZING)], env=clean_env(**{name: value}), capture_output=True, text=True, timeout=10)
    assert result.returncode != 0 and not result.stdout
    assert name in result.stderr


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_new_env_writes_the_sizing_for_compose(tmp_path: Path) -> None:
    machine = {"SIZING_CORES": "2", "SIZING_AVAILABLE_MB": "20000"}
    target = tmp_path / ".env"
    out = subprocess.run(
        [str(NEW_ENV), str(target)], env=clean_env(**machine), capture_output=True, text=True, timeout=30, check=True
    )
    written = env_file(target)
    expected = sizing(**machine)
    assert written["EXPORTER_REPLICAS"] == str(expected["EXPORTER_INSTANCES"])
    assert written["RENDER_CONCURRENCY"] == str(expected["RENDER_CONCURRENCY"])
    assert "EXPORTER_REPLICAS=2, RENDER_CONCURRENCY=4" in out.stdout
    # Set once: a second run, on another machine, changes nothing.
    before = target.read_text()
    subprocess.run(
        [str(NEW_ENV), str(target)],
        env=clean_env(SIZING_CORES="16", SIZING_AVAILABLE_MB="64000"),
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert target.read_text() == before


def test_new_env_takes_the_replicas_given(tmp_path: Path) -> None:
    machine = {"SIZING_CORES": "2", "SIZING_AVAILABLE_MB": "20000"}
    in_file = tmp_path / "in-file.env"
    in_file.write_text("EXPORTER_REPLICAS=1\n")
    subprocess.run([str(NEW_ENV), str(in_file)], env=clean_env(**machine), capture_output=True, timeout=30, check=True)
    assert env_file(in_file)["EXPORTER_REPLICAS"] == "1"
    assert env_file(in_file)["RENDER_CONCURRENCY"] == str(sizing(EXPORTER_INSTANCES="1")["RENDER_CONCURRENCY"])
    from_env = tmp_path / "from-env.env"
    env = clean_env(**machine, EXPORTER_REPLICAS="3")
    subprocess.run([str(NEW_ENV), str(from_env)], env=env, capture_output=True, timeout=30, check=True)
    assert env_file(from_env)["EXPORTER_REPLICAS"] == "3"
    assert env_file(from_env)["RENDER_CONCURRENCY"] == str(sizing(EXPORTER_INSTANCES="3")["RENDER_CONCURRENCY"])
