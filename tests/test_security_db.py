"""Issue 11.1: datagen connects to PostgreSQL as its own least-privilege role.

The role (DATAGEN_POSTGRES_USER, one per TEST_SLOT here) is created by
``migrate`` (the bootstrap), which pytest-django ran to build the test database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import psycopg2
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from psycopg2 import errors

ROLE = os.environ["DATAGEN_POSTGRES_USER"]


def connect_as_datagen():
    settings = connection.settings_dict
    return psycopg2.connect(
        host=settings["HOST"],
        port=settings["PORT"],
        dbname=settings["NAME"],
        user=ROLE,
        password=os.environ.get("DATAGEN_POSTGRES_PASSWORD", ""),
        application_name="security-test",
    )


@pytest.fixture
def datagen_db(db):
    conn = connect_as_datagen()
    conn.autocommit = True
    yield conn
    conn.close()


def test_the_role_is_namespaced_per_test_slot():
    assert f"datagen_test{int(os.environ.get('TEST_SLOT', '0'))}" == ROLE


def test_the_role_is_no_superuser_and_has_a_connection_limit_and_its_own_timeout(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolconnlimit, rolconfig "
            "FROM pg_roles WHERE rolname = %s",
            [ROLE],
        )
        superuser, createdb, createrole, replication, bypassrls, limit, config = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s",
            [ROLE],
        )
        memberships = cursor.fetchone()[0]
    assert (superuser, createdb, createrole, replication, bypassrls) == (False, False, False, False, False)
    assert memberships == 0
    assert 0 < limit <= 100
    assert "statement_timeout=10000ms" in config


def test_datagen_can_compute_but_cannot_read_the_admins_tables(datagen_db):
    with datagen_db.cursor() as cursor:
        cursor.execute("SELECT current_user, sum(sin(t)) FROM generate_series(1, 10) AS t")
        user, _ = cursor.fetchone()
        assert user == ROLE
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "10s"
        for table in ("functions_function", "auth_user", "django_session"):
            with pytest.raises(errors.InsufficientPrivilege):
                cursor.execute(f"SELECT * FROM {table} LIMIT 1")  # noqa: S608 - fixed names


@pytest.mark.parametrize(
    "statement",
    [
        "COPY (SELECT 1) TO PROGRAM 'touch /tmp/fd-security-copy-program'",
        "COPY (SELECT 1) TO '/tmp/fd-security-copy-file'",
        "SELECT pg_read_file('/etc/hostname')",
        "CREATE TABLE datagen_was_here (x int)",
        "CREATE ROLE datagen_made_this",
        "SET ROLE postgres",
    ],
)
def test_datagen_cannot_run_server_programs_read_files_or_create_anything(datagen_db, statement):
    with datagen_db.cursor() as cursor, pytest.raises(errors.InsufficientPrivilege):
        cursor.execute(statement)
    assert not os.path.exists("/tmp/fd-security-copy-program")


def test_the_bootstrap_is_idempotent_and_refuses_to_demote_a_superuser(db, monkeypatch):
    call_command("ensure_datagen_role")
    call_command("ensure_datagen_role")  # twice: no error, same role
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", [ROLE])
        assert cursor.fetchone()[0] == 1
        cursor.execute("SELECT current_user")
        admin_role = cursor.fetchone()[0]
    monkeypatch.setenv("DATAGEN_POSTGRES_USER", admin_role)
    with pytest.raises(CommandError, match="own role|superuser"):
        call_command("ensure_datagen_role")
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone()[0] is True


def scram_matches(verifier: str, password: str) -> bool:
    """Whether a stored SCRAM-SHA-256 verifier derives from ``password`` (RFC 5802, 7677)."""
    scheme, iterations_salt, keys = verifier.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, server_key = (base64.b64decode(key) for key in keys.split(":"))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return (
        scheme == "SCRAM-SHA-256"
        and hashlib.sha256(client_key).digest() == stored_key
        and hmac.new(salted, b"Server Key", "sha256").digest() == server_key
    )


def test_a_role_gets_its_password_as_a_scram_verifier_and_its_name_as_an_identifier(db, monkeypatch):
    """The bootstrap's shared create-or-alter step; the test's transaction takes the role away again."""
    name = ROLE + '"; DROP ROLE postgres; --'
    monkeypatch.setenv("DATAGEN_POSTGRES_USER", name)
    monkeypatch.setenv("DATAGEN_POSTGRES_PASSWORD", "a password for the test")
    call_command("ensure_datagen_role")
    call_command("ensure_datagen_role")  # an existing role is altered, not created again
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolpassword, rolsuper, rolinherit, rolconnlimit, has_database_privilege(rolname, "
            "current_database(), 'CONNECT') FROM pg_authid WHERE rolname = %s",
            [name],
        )
        verifier, superuser, inherit, limit, can_connect = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'postgres'")
        assert cursor.fetchone()[0] == 1
    assert scram_matches(verifier, "a password for the test")
    assert not scram_matches(verifier, "another password")
    assert (superuser, inherit, limit, can_connect) == (False, False, 20, True)


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_the_running_datagen_connects_as_its_own_role(stack):
    import requests

    response = requests.post(
        stack.env["DATAGEN_URL"] + "/api/v1/points",
        json={"expression": "sin(t)", "interval": 1, "dt": 1},
        timeout=30,
    )
    assert response.status_code == 200, response.text[:500]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'datagen' AND datname = %s",
            [connection.settings_dict["NAME"]],
        )
        users = {row[0] for row in cursor.fetchall()}
    assert users == {ROLE}


@pytest.mark.django_db(transaction=True)
def test_the_admins_own_role_owns_only_its_schema(monkeypatch):
    """With ADMIN_POSTGRES_USER (for deployments), the admin's role owns its schema and nothing more."""
    admin_role = f"dashboard_test{int(os.environ.get('TEST_SLOT', '0'))}"
    monkeypatch.setenv("ADMIN_POSTGRES_USER", admin_role)
    monkeypatch.setenv("ADMIN_POSTGRES_PASSWORD", "tests-only-admin-role-password")  # required with debug off
    call_command("ensure_admin_role")
    call_command("ensure_admin_role")  # idempotent
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'v')"
        )
        assert {row[0] for row in cursor.fetchall()} == {admin_role}
        cursor.execute("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = %s", [admin_role])
        assert cursor.fetchone() == (False, False, False)
    settings = connection.settings_dict
    conn = psycopg2.connect(host=settings["HOST"], port=settings["PORT"], dbname=settings["NAME"], user=admin_role)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM functions_function")  # its tables: yes
            cursor.execute("CREATE TABLE admin_role_probe (x int)")  # its schema: yes
            cursor.execute("DROP TABLE admin_role_probe")
            for statement in ("COPY (SELECT 1) TO PROGRAM 'true'", "CREATE ROLE admin_made_this", "SET ROLE postgres"):
                with pytest.raises(errors.InsufficientPrivilege):
                    cursor.execute(statement)
    finally:
        conn.close()
    # datagen's role still reads nothing of it.
    datagen = connect_as_datagen()
    try:
        with datagen.cursor() as cursor, pytest.raises(errors.InsufficientPrivilege):
            cursor.execute("SELECT * FROM functions_function")
    finally:
        datagen.close()


@pytest.mark.django_db
def test_the_admins_connection_has_a_statement_timeout():
    """Issue 19: every role the services use has a statement_timeout (datagen's is above)."""
    from django.conf import settings

    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "10s"
    assert "statement_timeout=10000" in settings.DATABASES["default"]["OPTIONS"]["options"]


@pytest.mark.django_db
def test_a_query_longer_than_the_admins_timeout_is_cancelled():
    """A statement that sleeps past ADMIN_STATEMENT_TIMEOUT_MS, through the admin's own settings, is cancelled."""
    import subprocess
    import time
    from pathlib import Path

    code = (
        "import time\n"
        "from django.db import connection, OperationalError\n"
        "started = time.monotonic()\n"
        "try:\n"
        "    with connection.cursor() as cursor:\n"
        "        cursor.execute('SELECT pg_sleep(5)')\n"
        "    print('finished')\n"
        "except OperationalError as exc:\n"
        "    print('cancelled', type(exc.__cause__).__name__, round(time.monotonic() - started, 1))\n"
    )
    started = time.monotonic()
    result = subprocess.run(
        [os.environ.get("PYTHON", "python"), "manage.py", "shell", "-c", code],
        cwd=Path(__file__).resolve().parent.parent / "admin",
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "dashboard.settings",
            "POSTGRES_DB": connection.settings_dict["NAME"],
            "ADMIN_STATEMENT_TIMEOUT_MS": "300",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "cancelled QueryCanceled" in result.stdout, result.stdout + result.stderr
    assert time.monotonic() - started < 5
