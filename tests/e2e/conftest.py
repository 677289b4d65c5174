"""Fixtures of the browser tests: a headless Debian Chromium driven by Playwright.

Order matters. Playwright's sync API keeps an asyncio event loop running in the
test's thread while the browser is open, and Django refuses ORM calls in a
thread with a running loop (SynchronousOnlyOperation). So every ORM call that
sets the scene (the superuser, the seeded function) runs in fixtures that are
set up *before* the ``page`` fixture starts Playwright, the browser is closed
before pytest-django flushes the database, and the few reads in the test body
go through :func:`off_loop` (a short-lived thread). DJANGO_ALLOW_ASYNC_UNSAFE is
not used: it would switch the check off for the whole process, and for the
workers that inherit the environment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from tests.stack import ROOT

T = TypeVar("T")

ARTIFACTS = ROOT / "var" / "artifacts" / "e2e"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = Path(os.environ.get("PUPPETEER_EXECUTABLE_PATH", "/usr/lib/chromium/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
USERNAME, PASSWORD = "e2e-admin", "pw-for-e2e-tests-1"
LANGUAGES = {"en": "en-US", "ru": "ru-RU"}  # admin language -> the browser's locale (Accept-Language)


def sign_in(page) -> None:
    """Sign in through the real login form; ends on the list of functions."""
    from django.urls import reverse

    list_url = reverse("admin:functions_function_changelist")
    page.goto(list_url)
    page.wait_for_url("**/admin/login/**")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.locator("#login-form [type=submit]").click()
    page.wait_for_url(f"**{list_url}")


def off_loop(fn: Callable[..., T], *args, **kwargs) -> T:
    """Run an ORM call in a fresh thread (no event loop there) and close its connection."""

    def run() -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)  # the page fixture screenshots a failed test
    return report


def clear_status() -> None:
    """Drop the live row/batch status (``fd:*``) from the test Redis database.

    The stack shares that database across the session: without this, the
    "Refresh batches" box would show the batches of earlier tests.
    """
    from pipeline import status

    client = status.client()
    keys = list(client.scan_iter("fd:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def lang(request) -> str:
    return getattr(request, "param", "en")


@pytest.fixture
def superuser(transactional_db):
    return get_user_model().objects.create_superuser(USERNAME, "e2e@example.com", PASSWORD)


@pytest.fixture
def clean_status(stack) -> Iterator[None]:
    clear_status()
    yield
    clear_status()


@pytest.fixture
def seeded(stack, transactional_db, clean_status):
    """An earlier function with its chart (story step 1 shows a list of saved functions).

    Created with the same service the admin's add form calls, and processed by the
    real pipeline; the columns of the list only appear once the list has a row.
    """
    from django.conf import settings

    from functions import selectors, services

    function = services.create_function(expression="sin(t)", dt=1, interval=1)
    assert selectors.wait_for_outcome(function.pk, function.run_id, settings.ADD_WAIT_SECONDS), (
        "the seeded sin(t) was not processed:\n" + stack.logs()
    )
    function.refresh_from_db()
    assert function.error == "", function.error
    return function


@pytest.fixture
def shots(lang) -> Callable:
    """``shot(page, step)`` saves a full-page screenshot as var/artifacts/e2e/<NN>-<lang>-<step>.png.

    ``shot.save(step, png)`` saves an image the test fetched; ``shot.publish`` updates docs/screenshots/.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob(f"*-{lang}-*"):
        old.unlink()
    counter = iter(range(1, 100))
    paths: dict[str, Path] = {}

    def shot(page, step: str) -> Path:
        path = paths[step] = ARTIFACTS / f"{next(counter):02d}-{lang}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def save(step: str, content: bytes) -> Path:
        path = paths[step] = ARTIFACTS / f"{next(counter):02d}-{lang}-{step}.png"
        path.write_bytes(content)
        return path

    def publish(names: dict[str, str]) -> None:
        """With E2E_UPDATE_DOCS=1, copy the given steps' images to docs/screenshots/ (the README's)."""
        if os.environ.get("E2E_UPDATE_DOCS") != "1":
            return
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for step, name in names.items():
            shutil.copyfile(paths[step], DOCS_SCREENSHOTS / name)

    shot.save, shot.publish = save, publish
    return shot


@pytest.fixture
def page(request, lang, live_server, stack, superuser, seeded):
    """A page of a fresh headless Chromium whose language is ``lang``; closed also when the test fails."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"Debian's Chromium is missing at {CHROMIUM}: apt-get install chromium")
    failed_responses: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale=LANGUAGES[lang], viewport=VIEWPORT, base_url=live_server.url)
            context.set_default_timeout(20_000)
            context.set_default_navigation_timeout(60_000)  # the add view waits for the chart
            pg = context.new_page()
            pg.on("response", lambda r: r.status >= 400 and failed_responses.append(f"{r.status} {r.url}"))
            pg.on("requestfailed", lambda r: failed_responses.append(f"failed {r.url}: {r.failure}"))
            pg.failed_responses = failed_responses
            yield pg
            report = getattr(request.node, "rep_call", None)
            if report is not None and report.failed:
                with contextlib.suppress(Exception):  # best effort: the page may be gone
                    ARTIFACTS.mkdir(parents=True, exist_ok=True)
                    pg.screenshot(path=str(ARTIFACTS / f"99-{lang}-failure.png"), full_page=True)
                    (ARTIFACTS / f"99-{lang}-failure.html").write_text(pg.content())
        finally:
            browser.close()
