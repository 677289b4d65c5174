"""Issue 19 row 3: PostgreSQL away -> the admin answers 503 with a page that says so, and recovers.

A real `deploy/run admin` against a PostgreSQL of this module's own (tests/sideservices.py),
bootstrapped by `deploy/run bootstrap`; Redis and RabbitMQ are the shared test ones.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
import requests

from tests.settings import PORT
from tests.sideservices import SideServices
from tests.stack import ROOT, Process, ProcessExited, login, wait_until

BASE = PORT + 80  # the side PostgreSQL; the admin listens on BASE + 10
ADMIN_URL = f"http://127.0.0.1:{BASE + 10}"
USER, PASSWORD = "away", "away-pw-for-tests-1"
MESSAGE = {
    "en": "The database is not reachable; this page will work again once it is back.",
    "ru": "База данных недоступна; страница снова заработает, как только она вернётся.",
}
LIST = "/admin/functions/function/"


def answers() -> bool:
    return requests.get(ADMIN_URL + "/admin/login/", timeout=5).status_code > 0


@pytest.fixture(scope="module")
def side_admin() -> Iterator[tuple[SideServices, requests.Session]]:
    side = SideServices(BASE)
    admin = None
    try:
        side.start_postgres()
        env = {
            **os.environ,
            **side.env(),
            # The shared broker and Redis of this test slot (side.env() names side ones that are not started).
            "CELERY_BROKER_URL": os.environ["CELERY_BROKER_URL"],
            "CELERY_RESULT_BACKEND": os.environ["CELERY_RESULT_BACKEND"],
            "PIPELINE_STATUS_REDIS_URL": os.environ["CELERY_RESULT_BACKEND"],
            "POSTGRES_PASSWORD": "away-db-password",  # debug is off; the side PostgreSQL trusts 127.0.0.1
            "DATAGEN_POSTGRES_USER": "datagen_away",
            "DATAGEN_POSTGRES_PASSWORD": "away-datagen-password",
            "DJANGO_DEBUG": "false",
            "DJANGO_SUPERUSER_USERNAME": USER,
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
            "ADMIN_PORT": str(BASE + 10),
            "ADMIN_WORKERS": "1",
            "ADMIN_THREADS": "2",
            "DJANGO_STATIC_ROOT": str(side.dir / "static"),  # debug off: collected static files
        }
        subprocess.run(
            ["python", "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=ROOT / "admin",
            env={**env, "DJANGO_SETTINGS_MODULE": "dashboard.settings"},
            check=True,
            capture_output=True,
        )
        subprocess.run([str(ROOT / "deploy" / "run"), "bootstrap"], env=env, check=True, capture_output=True)
        admin = Process("admin-database-away", ["admin"], env).start()

        def started() -> bool:
            if not admin.running:
                raise ProcessExited(f"the admin exited:\n{admin.tail()}")
            return answers()

        wait_until(started, 60, "the admin")
        session = login(ADMIN_URL, USER, PASSWORD)
        yield side, session
    finally:
        if admin is not None:
            admin.stop()
            print(admin.tail(80))
        side.close()


def test_the_admin_answers_503_while_postgresql_is_away_and_recovers(side_admin):
    side, session = side_admin
    assert session.get(ADMIN_URL + LIST, timeout=10).status_code == 200

    side.stop_postgres()
    try:
        for path in (LIST, "/admin/login/", "/admin/functions/function/1/change/"):
            response = session.get(ADMIN_URL + path, timeout=10)
            assert response.status_code == 503, (path, response.status_code, response.text[:300])
            assert MESSAGE["en"] in response.text
            assert response.headers["Retry-After"].isdigit()
        russian = session.get(ADMIN_URL + LIST, headers={"Accept-Language": "ru"}, timeout=10)
        assert russian.status_code == 503 and MESSAGE["ru"] in russian.text
        # A login attempt too (the lockout writes to the database): 503, not 500.
        login = session.post(
            ADMIN_URL + "/admin/login/",
            data={"username": USER, "password": "wrong", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
            headers={"Referer": ADMIN_URL + "/admin/login/"},
            timeout=10,
        )
        assert login.status_code == 503, login.text[:300]
    finally:
        side.start_postgres()

    # Back by itself: no restart of the admin.
    wait_until(lambda: session.get(ADMIN_URL + LIST, timeout=10).status_code == 200, 30, "the list to recover")
