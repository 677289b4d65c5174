"""Issue 11.3 (the app's part): no password in any log, no placeholder secret, check --deploy clean."""

from __future__ import annotations

import io
import os
import re
import secrets
import subprocess
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
TLS_WARNINGS = {"security.W004", "security.W008", "security.W012", "security.W016"}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [os.environ.get("PYTHON", "python"), "manage.py", *args],
        cwd=ROOT / "admin",
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "dashboard.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def deploy_warnings(**env: str) -> set[str]:
    result = manage("check", "--deploy", **env)
    assert "ERROR" not in result.stderr, result.stderr
    return set(re.findall(r"\((security\.W\d+|[a-z_]+\.[EW]\d+)\)", result.stdout + result.stderr))


def strong_key() -> str:
    return secrets.token_urlsafe(50)


def test_check_deploy_is_clean_apart_from_tls_with_debug_off():
    assert deploy_warnings(DJANGO_DEBUG="false", DJANGO_SECRET_KEY=strong_key()) == TLS_WARNINGS


def test_the_tls_settings_come_from_the_environment():
    warnings = deploy_warnings(
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=strong_key(),
        DJANGO_SECURE_COOKIES="true",
        DJANGO_SECURE_SSL_REDIRECT="true",
        DJANGO_SECURE_HSTS_SECONDS="31536000",
        DJANGO_SECURE_PROXY_SSL_HEADER="true",
    )
    # Left: whether HSTS covers subdomains and asks for preloading, a choice per site.
    assert warnings <= {"security.W005", "security.W021"}


@pytest.mark.parametrize(
    "key",
    ["", "short-key", "insecure-compose-default-secret-key-change-me-" + "x" * 20, "a" * 60],
)
def test_a_missing_weak_or_placeholder_secret_key_stops_the_admin(key):
    result = manage("check", DJANGO_DEBUG="false", DJANGO_SECRET_KEY=key)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.django_db
def test_ensure_superuser_is_createsuperuser_once_and_prints_no_password(monkeypatch, settings, caplog):
    password = "Zq8-" + secrets.token_urlsafe(12)
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", password)
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "root@example.com")
    settings.DEBUG = False
    out, err = io.StringIO(), io.StringIO()
    call_command("ensure_superuser", stdout=out, stderr=err)
    call_command("ensure_superuser", stdout=out, stderr=err)  # idempotent
    user = get_user_model().objects.get(username="root")
    assert user.is_superuser and user.check_password(password)
    assert user.email == "root@example.com"
    output = out.getvalue() + err.getvalue() + caplog.text
    assert "Created superuser 'root'" in output and "already exists" in output
    assert password not in output


@pytest.mark.django_db
def test_a_weak_superuser_password_is_refused_without_echoing_it(monkeypatch, settings):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "admin")
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DJANGO_SUPERUSER_PASSWORD") as error:
        call_command("ensure_superuser", stdout=io.StringIO())
    assert "admin" not in str(error.value).replace("DJANGO_SUPERUSER", "")
    assert not get_user_model().objects.filter(username="root").exists()


@pytest.mark.django_db(transaction=True)
def test_the_bootstrap_logs_no_password():
    """The real `deploy/run bootstrap` (migrate, datagen's role, superuser) on the test database."""
    password = "Bq7-" + secrets.token_urlsafe(12)
    result = subprocess.run(
        [str(ROOT / "deploy" / "run"), "bootstrap"],
        env={
            **os.environ,
            "POSTGRES_DB": connection.settings_dict["NAME"],
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": strong_key(),
            "DJANGO_SUPERUSER_USERNAME": "bootroot",
            "DJANGO_SUPERUSER_PASSWORD": password,
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert password not in result.stdout + result.stderr
    assert get_user_model().objects.get(username="bootroot").check_password(password)


@pytest.mark.parametrize("password", ["", "   "])
def test_an_empty_database_password_stops_the_admin_with_debug_off(password):
    """Issue 19: every secret the README lists is required with debug off, not the key alone."""
    result = manage("check", DJANGO_DEBUG="false", DJANGO_SECRET_KEY=strong_key(), POSTGRES_PASSWORD=password)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr
    # In debug (make dev, local trust authentication) an empty password is still fine.
    assert manage("check", DJANGO_DEBUG="true", POSTGRES_PASSWORD=password).returncode == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("command", "env"),
    [
        ("ensure_datagen_role", {"DATAGEN_POSTGRES_PASSWORD": ""}),
        ("ensure_admin_role", {"ADMIN_POSTGRES_USER": "dashboard_test_nopw", "ADMIN_POSTGRES_PASSWORD": ""}),
    ],
)
def test_the_bootstrap_refuses_a_role_without_a_password_with_debug_off(monkeypatch, settings, command, env):
    settings.DEBUG = False
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    variable = next(name for name in env if name.endswith("PASSWORD"))
    with pytest.raises(CommandError, match=variable):
        call_command(command, stdout=io.StringIO())
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'dashboard_test_nopw'")
        assert cursor.fetchone()[0] == 0
