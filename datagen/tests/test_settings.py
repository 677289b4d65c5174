"""The settings rule: an unset or empty variable means the default; a bad value names the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from datagen_service.settings import DatagenEnv


def test_every_variable_has_a_default_and_a_meaning() -> None:
    for name, field in DatagenEnv.model_fields.items():
        assert field.description, name
        assert not field.is_required(), name


@pytest.mark.parametrize("value", ["", "  ", "\t"])
def test_empty_or_blank_means_default(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    for name in DatagenEnv.model_fields:
        monkeypatch.setenv(name.upper(), value)
    assert DatagenEnv() == DatagenEnv.model_construct()
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
