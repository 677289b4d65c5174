"""Dependencies point one way: admin → pipeline (its public entry point only) → datagen and
the export server over HTTP. No service imports another service's code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {
    "admin": {"dashboard", "functions"},
    "pipeline": {"pipeline"},
    "datagen": {"datagen_service", "series"},
}


def imports(path: Path) -> list[str]:
    """Every module a Python file imports (``from a import b`` gives ``a.b`` as well as ``a``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def sources(service: str) -> list[Path]:
    """The service's own code (not its tests)."""
    return [path for path in (ROOT / service).rglob("*.py") if not {"migrations", "tests", ".venv"} & set(path.parts)]


def test_the_admin_uses_the_pipeline_only_through_its_public_entry_point():
    reached = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sources("admin")
        for name in imports(path)
        if name.split(".")[0] == "pipeline"
        and name not in ("pipeline", "pipeline.api")
        and not name.startswith("pipeline.api.")
    }
    assert reached == set()


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another_services_code(service):
    foreign = set().union(*(packages for name, packages in SERVICES.items() if name != service))
    if service == "admin":
        foreign -= {"pipeline"}  # through pipeline.api, checked above
    reached = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sources(service)
        for name in imports(path)
        if name.split(".")[0] in foreign
    }
    assert reached == set()
