"""The Content-Security-Policy (issue 19, deliverable 5): the pages work under it.

A real browser loads the list (and runs Refresh, so the list's live rows update
themselves), the detail page with the interactive chart (zoomed once: the chart asks
the admin again) and datagen's docs page (Swagger UI); every answer carries the
policy, no ``securitypolicyviolation`` event fires and the console has no CSP error.
"""

from __future__ import annotations

import os

import pytest
from django.urls import reverse
from playwright.sync_api import Page

from tests.e2e.test_explore import sign_in
from tests.e2e.test_user_story import LIST_URL, WAIT_SECONDS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

# Before any page script: every violation the page reports is kept (Playwright's init
# scripts are not subject to the page's policy).
LISTEN = """
window.fdCspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => window.fdCspViolations.push(
    `${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`));
"""


def csp_errors(console: list[str], page: Page) -> list[str]:
    events = page.evaluate("window.fdCspViolations")
    return events + [m for m in console if "Content Security Policy" in m or "Content-Security-Policy" in m]


def assert_policy(response, *, service: str) -> None:
    assert response is not None and response.ok, response and response.status
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy and "default-src 'self'" in policy, f"{service}: {policy!r}"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, f"{service}: {policy!r}"


def test_the_admin_and_the_docs_page_work_under_the_content_security_policy(page: Page, seeded):
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.context.add_init_script(LISTEN)
    sign_in(page)

    # The list, then Refresh: the row updates itself (live_rows.js, live-rows.json).
    assert_policy(page.goto(LIST_URL), service="admin list")
    page.locator("input.action-select").first.check()
    page.locator("select[name=action]").select_option("refresh")
    with page.expect_navigation():
        page.locator("button[name=index]").click()
    assert page.evaluate("document.body.dataset.fdLive") == "polling"
    page.wait_for_function("() => document.body.dataset.fdLive === 'idle'", timeout=WAIT_SECONDS * 1000)
    assert page.locator("td.field-chart_or_error img").count() == 1
    assert csp_errors(console, page) == [], "the list"

    # The detail page: the interactive chart draws, and a zoom asks the admin again.
    response = page.goto(reverse("admin:functions_function_change", args=[seeded.pk]))
    assert_policy(response, service="admin detail page")
    page.wait_for_selector("#fd-explore-chart[data-state=ready]", timeout=WAIT_SECONDS * 1000)
    page.wait_for_function("() => document.getElementById('fd-explore-chart').fdChart !== undefined")
    with page.expect_response(lambda r: "points.json" in r.url and r.ok):
        page.evaluate(
            """() => { const axis = document.getElementById('fd-explore-chart').fdChart.xAxis[0];
                       const quarter = (axis.max - axis.min) / 4;
                       axis.setExtremes(axis.min + quarter, axis.max - quarter, true, false, {trigger: 'zoom'}); }"""
        )
    page.wait_for_selector("#fd-explore-chart[data-state=ready]")
    assert page.locator("#fd-explore-chart svg.highcharts-root").count() == 1
    assert csp_errors(console, page) == [], "the detail page"

    # datagen's docs page: Swagger UI draws the operations.
    response = page.goto(os.environ["DATAGEN_URL"] + "/api/v1/docs")
    assert_policy(response, service="datagen docs")
    page.wait_for_selector(".swagger-ui .opblock-summary-path", timeout=WAIT_SECONDS * 1000)
    assert page.locator(".swagger-ui .opblock").count() >= 2
    assert csp_errors(console, page) == [], "the docs page"
