"""A real browser walks the user story of the brief, in English and in Russian.

Headless Debian Chromium (Playwright, no downloaded browser) against the admin
served by pytest-django's live server, with the real workers, datagen and export
servers of the ``stack`` fixture. Every step is screenshotted to
var/artifacts/e2e/<NN>-<lang>-<step>.png.

1. sign in; the list shows the brief's columns and the Add button;
2. add ``t + 2/t`` (dt 1 h, interval 1 day): the new row has a loaded chart and a processing date;
3. add ``1/(t - t)``, which fails in PostgreSQL: its row shows the exception text instead of a chart;
4. tick two rows, run "Refresh" ("Обновить"): without a reload, both rows show their new chart and a
   later processing date (the page polls the admin while rows are in flight), and a reload shows the same;
5. the same walk with the browser in Russian.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

import pytest
from django.urls import reverse
from django.utils import translation
from playwright.sync_api import Locator, Page

from functions.admin import format_processing_date
from functions.models import Function
from functions.numbers import format_duration
from tests.e2e.conftest import PASSWORD, USERNAME, off_loop

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

LIST_URL = reverse("admin:functions_function_changelist")
ADD_URL = reverse("admin:functions_function_add")
WAIT_SECONDS = 60  # bound of every wait for the pipeline

WORDS = {
    "en": {
        "columns": ["function", "chart", "dt, hours", "interval, days", "processing date"],
        "refresh": "Refresh",
        "go": "Go",
        "division": "math error: division by zero",
    },
    "ru": {
        "columns": ["функция", "график", "dt, часы", "interval, дни", "дата обработки"],
        "refresh": "Обновить",
        "go": "Выполнить",
        "division": "ошибка вычисления: деление на ноль",
    },
}


# The README's screenshots (docs/screenshots/), refreshed by `E2E_UPDATE_DOCS=1 python -m pytest tests/e2e`.
DOC_SCREENSHOTS = {
    "en": {"refreshed": "list.png", "add-form": "add-form.png", "chart": "chart.png"},
    "ru": {"refresh-queued": "refresh-ru.png"},
}


# Helpers ------------------------------------------------------------------------


def row(page: Page, label: str) -> Locator:
    """The list row whose function column reads exactly ``label``."""
    exact = re.compile(rf"^\s*{re.escape(label)}\s*$")
    return page.locator("#result_list tbody tr").filter(has=page.locator("th.field-function", has_text=exact))


def chart_src(page: Page, label: str) -> str:
    return row(page, label).locator("img.fd-thumb").get_attribute("src")


def assert_chart_loaded(page: Page, label: str) -> str:
    """The row's chart <img> has really loaded (complete, natural width > 0); returns its src."""
    img = row(page, label).locator("img.fd-thumb")
    assert img.count() == 1, f"no chart image in the row of {label!r}: {row(page, label).inner_html()}"
    handle = img.element_handle()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=handle, timeout=10_000)
    size = handle.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size[0] > 0 and size[1] > 0, f"the chart of {label!r} did not load: {size}"
    return img.get_attribute("src")


def processing_date(page: Page, label: str) -> str:
    """The processing date as the row shows it (date and time on two lines), on one line."""
    return " ".join(row(page, label).locator("td.field-processing_date").inner_text().split())


def shown_as(value, lang: str, unit: str = "h") -> str:
    """How the admin list shows a duration (``unit`` "h" or "d") or a processing date, in ``lang``."""
    with translation.override(lang):
        if isinstance(value, datetime):
            return format_processing_date(value)
        return format_duration(value, unit)


def stored(label: str) -> Function:
    expression = label.removeprefix("y = ")
    return off_loop(lambda: Function.objects.get(expression=expression))


def assert_columns_in_view(page: Page) -> None:
    """Every column fits the list without horizontal scrolling (the user *sees* the processing date)."""
    widths = page.evaluate(
        """() => ({page: document.documentElement.scrollWidth, window: document.documentElement.clientWidth,
                  results: document.querySelector('div.results').scrollWidth,
                  visible: document.querySelector('div.results').clientWidth})"""
    )
    assert widths["page"] <= widths["window"], f"the page scrolls horizontally: {widths}"
    assert widths["results"] <= widths["visible"], f"the list scrolls horizontally: {widths}"
    right_edge = min(
        page.locator("div.results").evaluate("el => el.getBoundingClientRect().right"),
        page.evaluate("document.documentElement.clientWidth"),
    )
    for th in page.locator("#result_list thead th").all():
        right = th.evaluate("el => el.getBoundingClientRect().right")
        assert right <= right_edge + 1, (
            f"column {th.text_content().strip()!r} ends at {right:.0f} px, past the visible list ({right_edge:.0f} px)"
        )


def assert_no_failed_requests(page: Page) -> None:
    failed = [r for r in page.failed_responses if "favicon" not in r]
    assert not failed, f"requests failed (CSS, charts, pages): {failed}"


def add_function(page: Page, *, preset: str, expression: str = "", before_save=None) -> None:
    """Add a function through the form with dt 1 hour and interval 1 day."""
    page.locator(".object-tools a.addlink").click()
    page.wait_for_url(f"**{ADD_URL}")
    page.select_option("select[name=preset]", preset)
    if expression:
        page.fill("input[name=expression]", expression)
    page.fill("input[name=dt]", "1")
    page.fill("input[name=interval]", "1")
    if before_save:
        before_save()
    # The add view waits (bounded) for the chart, then opens the list.
    with page.expect_navigation(url=f"**{LIST_URL}", timeout=WAIT_SECONDS * 1000):
        page.locator("input[name=_save]").click(timeout=WAIT_SECONDS * 1000)


# The walk -----------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "ru"], indirect=True)
def test_a_user_walks_the_story_in_a_real_browser(page: Page, shots, lang, seeded):
    words = WORDS[lang]
    earlier = f"y = {seeded.expression}"  # sin(t), processed before the walk

    # 1. Sign in; the list shows the brief's columns and the Add button. -------------------------------
    page.goto(LIST_URL)
    page.wait_for_url("**/admin/login/**")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    shots(page, "sign-in")
    page.locator("#login-form [type=submit]").click()
    page.wait_for_url(f"**{LIST_URL}")
    # The admin's stylesheet loaded (live server's static handler): the header is styled.
    header_bg = page.locator("#header").evaluate("el => getComputedStyle(el).backgroundColor")
    assert header_bg not in ("", "rgba(0, 0, 0, 0)"), "the admin CSS did not load"
    headers = [h.strip().lower() for h in page.locator("#result_list thead th").all_text_contents()]
    for column in words["columns"]:
        assert column in headers, f"column {column!r} missing from {headers}"
    add_button = page.locator(".object-tools a.addlink")
    assert add_button.is_visible(), "no Add button"
    assert add_button.get_attribute("href").endswith(ADD_URL)
    assert_chart_loaded(page, earlier)
    assert_columns_in_view(page)
    shots(page, "list")

    # 2. Add t + 2/t (dt 1 hour, interval 1 day): a loaded chart and a processing date. -------------------
    label = "y = t + 2/t"
    add_function(page, preset="t + 2/t", before_save=lambda: shots(page, "add-form"))
    assert row(page, label).count() == 1, f"no row for {label!r} after saving"
    # On a busy machine the add view's bounded wait may end first: the row then finishes by itself.
    row(page, label).locator("img.fd-thumb").wait_for(timeout=WAIT_SECONDS * 1000)
    assert_chart_loaded(page, label)
    cells = [
        " ".join(row(page, label).locator(f"td.field-{name}").inner_text().split())
        for name in ("dt_human", "interval_human")
    ]
    assert cells == [shown_as(1.0, lang, "h"), shown_as(1.0, lang, "d")], f"dt and interval shown as {cells}"
    assert cells == {"en": ["1 h", "1 d"], "ru": ["1 ч", "1 дн."]}[lang]
    assert processing_date(page, label) == shown_as(stored(label).processed_at, lang)
    shots(page, "added-chart")
    # The chart itself, as the browser gets it (an artifact to look at full size).
    chart = page.request.get(chart_src(page, label))
    assert chart.ok and chart.headers["content-type"] == "image/png", chart.status
    shots.save("chart", chart.body())

    # 3. A function that fails in PostgreSQL: its row shows the exception text. -----------------------------
    failing = "y = 1/(t - t)"
    add_function(page, preset="__custom__", expression="1/(t - t)")
    error = row(page, failing).locator("pre.fd-error")
    error.wait_for(timeout=WAIT_SECONDS * 1000)
    assert error.count() == 1, f"no error text in the row of {failing!r}: {row(page, failing).inner_html()}"
    assert words["division"] in error.inner_text()
    assert row(page, failing).locator("img").count() == 0, "a failed function shows an image"
    assert processing_date(page, failing) not in ("", "-"), "the failed function has no processing date"
    shots(page, "failed-function")

    # 4. Tick two rows, run Refresh, reload until both have a new chart and a later processing date. -------
    ticked = [label, earlier]
    before = {f: (chart_src(page, f), stored(f).processed_at) for f in ticked}
    for f in ticked:
        row(page, f).locator("input.action-select").check()
    action = page.locator("select[name=action]")
    assert action.locator("option[value=refresh]").inner_text().strip() == words["refresh"]
    action.select_option(label=words["refresh"])
    go = page.locator("button[name=index]")
    assert go.inner_text().strip() == words["go"]
    shots(page, "refresh-selected")
    with page.expect_navigation():
        go.click()
    assert page.locator("ul.messagelist li.success").count() == 1, "no confirmation of the refresh"
    shots(page, "refresh-queued")

    # No reload: the page polls the admin while rows are in flight and updates them in place.
    assert page.evaluate("document.body.dataset.fdLive") == "polling", "the list does not poll its rows in flight"
    page_id = page.evaluate("window.fdPageId = Math.random()")
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        pending = [f for f in ticked if chart_src(page, f) in (None, before[f][0])]
        batch = page.locator(".fd-batches li").first
        batch_done = batch.count() == 1 and batch.locator("progress").evaluate("p => p.value === p.max && p.max === 2")
        if not pending and batch_done:
            break
        assert time.monotonic() < deadline, (
            f"after {WAIT_SECONDS} s without a reload: no new chart for {pending}, "
            f"statuses {page.locator('td.field-status').all_inner_texts()}, "
            f"batch {batch.inner_text() if batch.count() else 'not shown'!r}"
        )
        page.wait_for_timeout(500)
    assert page.evaluate("window.fdPageId") == page_id, "the page was reloaded"
    page.wait_for_function("() => document.body.dataset.fdLive === 'idle'", timeout=10_000)  # polling stopped
    live_cells = {f: row(page, f).locator("td.field-status").inner_text().strip() for f in ticked}
    for f in ticked:
        src = assert_chart_loaded(page, f)
        assert src != before[f][0]
        new = stored(f)
        assert str(new.result_run) in src, "the chart is not the stored run's"
        assert new.processed_at > before[f][1], f"{f}: the processing date did not move on"
        # The list shows the new date (to the minute: within a minute the text may equal the old one).
        assert processing_date(page, f) == shown_as(new.processed_at, lang)
    shots(page, "refreshed")
    # A reload shows the same truth as the rows that updated themselves.
    page.reload()
    for f in ticked:
        assert row(page, f).locator("td.field-status").inner_text().strip() == live_cells[f]
        assert processing_date(page, f) == shown_as(stored(f).processed_at, lang)
        assert str(stored(f).result_run) in chart_src(page, f)
    assert_columns_in_view(page)
    assert_no_failed_requests(page)
    shots.publish(DOC_SCREENSHOTS[lang])
