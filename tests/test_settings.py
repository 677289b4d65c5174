"""The settings rule of the admin and the pipeline (and the bootstrap's role steps).

One rule, :class:`pipeline.settings.EnvSettings` (datagen has the same, tested in
datagen/tests/test_settings.py): an unset, empty or blank variable means the
default; a bad value stops start-up with an error naming the variable; each
module's docstring table lists every variable with the class's default.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from types import ModuleType

import pytest
from django.core.management.base import CommandError
from pydantic import SecretStr

import dashboard.settings as admin_settings
import pipeline.settings as pipeline_settings
from functions.management.commands import ensure_admin_role, ensure_datagen_role
from pipeline.settings import EnvSettings, SettingsError, load
from tests.stack import ROOT

MODULES: list[tuple[ModuleType, type[EnvSettings]]] = [
    (admin_settings, admin_settings.AdminEnv),
    (pipeline_settings, pipeline_settings.PipelineEnv),
    (ensure_datagen_role, ensure_datagen_role.DatagenRoleEnv),
    (ensure_admin_role, ensure_admin_role.AdminRoleEnv),
]
IDS = [env.__name__ for _, env in MODULES]


def documented(module: ModuleType) -> dict[str, str]:
    """NAME -> default column of the module docstring's table (markdown `| A | b |` or rst ``A`` b)."""
    doc = module.__doc__ or ""
    rows = re.findall(r"^\|\s*([A-Z][A-Z0-9_]+)\s*\|\s*([^|]*?)\s*\|", doc, re.MULTILINE)
    rows += re.findall(r"^``([A-Z][A-Z0-9_]+)``\s+(``[^`]*``|\([^)]*\))", doc, re.MULTILINE)
    return {name: default.strip("`") for name, default in rows}


def shown(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@pytest.mark.parametrize(("module", "env_class"), MODULES, ids=IDS)
def test_the_docstring_table_lists_every_variable_with_its_default(module, env_class) -> None:
    table = documented(module)
    assert set(table) == {name.upper() for name in env_class.model_fields}
    for name, default in table.items():
        field = env_class.model_fields[name.lower()]
        assert field.description and not field.is_required(), name
        if default.startswith("("):  # (empty), (= CELERY_RESULT_BACKEND): derived or empty in the module
            assert field.default == "", name
        else:
            assert default == shown(field.default), name


@pytest.mark.parametrize("value", ["", "  ", "\t"])
@pytest.mark.parametrize(("module", "env_class"), MODULES, ids=IDS)
def test_empty_or_blank_means_default(monkeypatch, module, env_class, value: str) -> None:
    for name in env_class.model_fields:
        monkeypatch.setenv(name.upper(), value)

    def revealed(env: object) -> dict[str, object]:  # secrets (SecretStr) in clear, for comparing
        return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in dict(env).items()}

    assert revealed(env_class()) == revealed(env_class.model_construct())


def test_set_values_are_read_stripped_and_typed(monkeypatch) -> None:
    monkeypatch.setenv("DJANGO_DEBUG", " on ")
    monkeypatch.setenv("DJANGO_LOGIN_COOLOFF_MINUTES", "2.5")
    monkeypatch.setenv("CHART_WIDTH", " 640 ")
    monkeypatch.setenv("EXPORTER_URLS", " http://a:1/ ,, http://b:2 ")
    admin, pipeline = admin_settings.AdminEnv(), pipeline_settings.PipelineEnv()
    assert (admin.django_debug, admin.django_login_cooloff_minutes) == (True, 2.5)
    assert pipeline.chart_width == 640
    assert pipeline_settings.split_list(pipeline.exporter_urls) == ["http://a:1/", "http://b:2"]


def test_the_address_lockout_limit_must_be_above_the_user_name_limit(monkeypatch) -> None:
    monkeypatch.setenv("DJANGO_LOGIN_FAILURE_LIMIT", "5")
    monkeypatch.setenv("DJANGO_LOGIN_ADDRESS_FAILURE_LIMIT", "5")
    with pytest.raises(SettingsError, match="DJANGO_LOGIN_ADDRESS_FAILURE_LIMIT must be above"):
        load(admin_settings.AdminEnv, "test")
    monkeypatch.setenv("DJANGO_TRUSTED_PROXIES", " 10.0.0.2 , 172.16.0.0/12, ::1 ")
    monkeypatch.setenv("DJANGO_LOGIN_ADDRESS_FAILURE_LIMIT", "6")
    assert load(admin_settings.AdminEnv, "test").django_login_address_failure_limit == 6


@pytest.mark.parametrize(
    ("env_class", "name", "value"),
    [
        (pipeline_settings.PipelineEnv, "PIPELINE_MAX_RETRIES", "many"),
        (pipeline_settings.PipelineEnv, "CHART_WIDTH", "0"),
        (pipeline_settings.PipelineEnv, "PIPELINE_HTTP_TIMEOUT", "-1"),
        (admin_settings.AdminEnv, "DJANGO_DEBUG", "maybe"),
        (admin_settings.AdminEnv, "POSTGRES_PORT", "54x"),
        (admin_settings.AdminEnv, "ADD_WAIT_SECONDS", "soon"),
        (admin_settings.AdminEnv, "DJANGO_TRUSTED_PROXIES", "10.0.0.2, proxy.example"),
    ],
)
def test_a_bad_value_names_the_variable(monkeypatch, env_class, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name.lower()):
        load(env_class, "test")


@pytest.mark.parametrize(
    ("name", "value"), [("DATAGEN_POSTGRES_CONNECTION_LIMIT", "0"), ("DATAGEN_STATEMENT_TIMEOUT_MS", "10s")]
)
def test_a_bad_role_setting_stops_the_bootstrap_naming_it(monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(CommandError, match=name.lower()):
        ensure_datagen_role.datagen_role_settings()


def test_the_admin_refuses_to_start_with_a_bad_value_and_says_which() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dashboard.settings"}
    env["DJANGO_LOGIN_FAILURE_LIMIT"] = "five"
    result = subprocess.run(
        [sys.executable, "admin/manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "django_login_failure_limit" in result.stderr
    assert "SettingsError: admin environment" in result.stderr


RETRY_SECONDS = ["PIPELINE_RETRY_BACKOFF", "PIPELINE_RETRY_BACKOFF_MAX"]


@pytest.mark.parametrize("name", RETRY_SECONDS)
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0.5", "not a whole number"),  # Celery int()s it: 0.5 would be 1, 2.5 would be 2
        ("2.5", "not a whole number"),
        ("1e3", "not a whole number"),
        ("soon", "not a whole number"),
        ("0", "at least 1"),  # no backoff at all (or every retry at once)
        ("-3", "at least 1"),
    ],
)
def test_retry_seconds_celery_would_coerce_are_refused_naming_the_variable(
    monkeypatch, name: str, value: str, problem: str
) -> None:
    """Celery's autoretry int()s retry_backoff and retry_backoff_max (celery/app/autoretry.py)
    and a falsy retry_backoff means no backoff at all (each retry then waits
    default_retry_delay, 180 s): such a value would silently not mean what it says."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as refused:
        load(pipeline_settings.PipelineEnv, "pipeline")
    message = str(refused.value)
    assert name in message and name.lower() in message, message
    assert problem in message and repr(value) in message, message


@pytest.mark.parametrize("name", RETRY_SECONDS)
def test_retry_seconds_are_whole_seconds_as_celery_takes_them(monkeypatch, name: str) -> None:
    monkeypatch.setenv(name, " 7 ")
    value = getattr(load(pipeline_settings.PipelineEnv, "pipeline"), name.lower())
    assert value == 7 and type(value) is int
    defaults = pipeline_settings.PipelineEnv.model_construct()
    assert (defaults.pipeline_retry_backoff, defaults.pipeline_retry_backoff_max) == (1, 30)


def test_the_stage_tasks_get_the_retry_seconds_unchanged() -> None:
    from pipeline.celery import StageTask

    assert StageTask.retry_backoff == pipeline_settings.RETRY_BACKOFF == int(pipeline_settings.RETRY_BACKOFF) >= 1
    assert StageTask.retry_backoff_max == pipeline_settings.RETRY_BACKOFF_MAX >= 1
    assert type(StageTask.retry_backoff) is int and type(StageTask.retry_backoff_max) is int
