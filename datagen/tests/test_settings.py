"""The settings rule: an unset or empty variable means the default; a bad value names the variable."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from datagen_service.settings import DatagenEnv


def revealed(env: DatagenEnv) -> dict[str, object]:
    """The values, secrets (SecretStr) in clear, for comparing."""
    return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in dict(env).items()}


def test_every_variable_has_a_default_and_a_meaning() -> None:
    for name, field in DatagenEnv.model_fields.items():
        assert field.description, name
        assert not field.is_required(), name


@pytest.mark.parametrize("value", ["", "  ", "\t"])
def test_empty_or_blank_means_default(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    for name in DatagenEnv.model_fields:
        monkeypatch.setenv(name.upper(), value)
    assert revealed(DatagenEnv()) == revealed(DatagenEnv.model_construct())
    assert DatagenEnv().datagen_max_samples == 10_000_000


def test_set_values_are_read_and_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAGEN_MAX_SAMPLES", " 500 ")
    monkeypatch.setenv("DATAGEN_PG_JIT", "on")
    monkeypatch.setenv("POSTGRES_HOST", "db.example")
    env = DatagenEnv()
    assert (env.datagen_max_samples, env.datagen_pg_jit, env.postgres_host) == (500, True, "db.example")


@pytest.mark.parametrize("name, value", [("DATAGEN_MAX_SAMPLES", "many"), ("DATAGEN_HEAVY_SLOTS", "0")])
def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        DatagenEnv()


def test_the_docstring_table_lists_every_variable_with_its_default() -> None:
    import re

    import datagen_service.settings as module

    rows = re.findall(r"^``([A-Z0-9_]+)``\s+(``[^`]*``|\([^)]*\))", module.__doc__, re.MULTILINE)
    assert {name.lower() for name, _ in rows} == set(DatagenEnv.model_fields)
    for name, default in rows:
        value = DatagenEnv.model_fields[name.lower()].default
        if default.startswith("``"):
            shown = {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
            assert default == f"``{shown}``", name
        else:
            assert default.startswith("("), name  # (empty), (a dev-only key)


def test_no_setting_shows_a_secret_in_clear() -> None:
    """Issue 19: the settings as Django's error reports list them hold no password or key in clear."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import django\n"
        "django.setup()\n"
        "from django.views.debug import get_default_exception_reporter_filter\n"
        "print(get_default_exception_reporter_filter().get_safe_settings())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent.parent,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "datagen_service.settings",
            "DATAGEN_POSTGRES_PASSWORD": "marker-db-password-9f3",
            "DATAGEN_SECRET_KEY": "marker-secret-key-7c1",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "DATABASES" in result.stdout
    assert "marker-db-password-9f3" not in result.stdout
    assert "marker-secret-key-7c1" not in result.stdout
