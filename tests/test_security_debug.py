"""Issue 19 row 5: no secret on a debug page, and debug pages only for the machine itself.

With DJANGO_DEBUG on, a foreign Host header (DisallowedHost, 400) or an error (500) made
Django show its technical page, which listed the settings module's environment object
with the secret key and the database password in clear.
"""

from __future__ import annotations

import http.client
import os

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from functions import selectors
from tests.settings import PORT
from tests.stack import Process, ProcessExited, wait_until

ADMIN_PORT = PORT + 90  # this module's own admin process
SECRET_KEY = "debug-page-marker-secret-key-" + "a1b2c3d4e5" * 3
DB_PASSWORD = "debug-page-marker-db-password-5e1"  # the local PostgreSQL trusts 127.0.0.1: any password connects


def get(path: str, host: str, source: str = "127.0.0.1") -> tuple[int, str]:
    """GET from ``source`` (any 127.x address is this machine, but only 127.0.0.1 counts as local)."""
    conn = http.client.HTTPConnection("127.0.0.1", ADMIN_PORT, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", path, headers={"Host": host, "Accept": "text/html"})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def debug_admin():
    """A real `deploy/run admin` with debug on, a secret key and a database password of its own."""
    env = {
        **os.environ,
        "DJANGO_DEBUG": "true",
        "DJANGO_SECRET_KEY": SECRET_KEY,
        "POSTGRES_PASSWORD": DB_PASSWORD,
        "ADMIN_PORT": str(ADMIN_PORT),
        "ADMIN_WORKERS": "1",
        "ADMIN_THREADS": "2",
    }
    process = Process("admin-debug-page", ["admin"], env)
    if process.log_path.exists():
        process.log_path.unlink()  # this run's log only: it is checked for secrets below
    process.start()
    try:

        def started() -> bool:
            if not process.running:
                raise ProcessExited(f"the admin did not start:\n{process.tail()}")
            return get("/admin/login/", "127.0.0.1")[0] > 0

        wait_until(started, 60, "the admin")
        yield process
    finally:
        process.stop()
        output = process.log_path.read_text(errors="replace")
        assert SECRET_KEY not in output and DB_PASSWORD not in output  # nor in its log


def test_a_foreign_host_from_the_machine_shows_the_debug_page_without_secrets(debug_admin):
    status, body = get("/admin/", "evil.example")
    assert status == 400
    assert "DisallowedHost" in body  # the technical page, for the machine itself
    assert SECRET_KEY not in body
    assert DB_PASSWORD not in body


def test_a_foreign_host_from_elsewhere_gets_the_plain_page(debug_admin):
    status, body = get("/admin/", "evil.example", source="127.0.0.2")
    assert status == 400
    assert "DisallowedHost" not in body and "Traceback" not in body
    assert SECRET_KEY not in body and DB_PASSWORD not in body


@pytest.fixture
def failing_list(db, monkeypatch):
    """A server error in debug mode (through the test client, its REMOTE_ADDR chosen per request)."""
    monkeypatch.setattr(django_settings, "DEBUG", True)

    def broken() -> None:
        raise RuntimeError("a bug in a selector")

    monkeypatch.setattr(selectors, "recent_batches", broken)
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-for-tests-1")
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def test_a_server_error_shows_the_debug_page_only_to_the_machine_itself(failing_list):
    url = reverse("admin:functions_function_changelist")
    local = failing_list.get(url, REMOTE_ADDR="127.0.0.1", HTTP_ACCEPT="text/html")
    assert local.status_code == 500
    assert "a bug in a selector" in local.content.decode()
    assert django_settings.SECRET_KEY not in local.content.decode()

    remote = failing_list.get(url, REMOTE_ADDR="203.0.113.7", HTTP_ACCEPT="text/html")
    assert remote.status_code == 500
    body = remote.content.decode()
    assert "a bug in a selector" not in body and "Traceback" not in body
    assert django_settings.SECRET_KEY not in body
