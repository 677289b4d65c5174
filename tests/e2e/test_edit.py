"""A real browser edits a function through the change form, as a user would.

Headless Debian Chromium (Playwright) against the admin of pytest-django's live
server, with the real workers, datagen and export servers of the ``stack``
fixture; in English. Each case opens a saved row from the list, picks in the
"Function" select, types into the "Custom expression", "dt" and "interval"
boxes and clicks Save:

a. preset ``t + 2/t`` -> preset ``sin(t)``;
b. custom ``t*t + 1`` -> preset ``sin(t)``, the custom text left in its box;
c. preset ``t + 2/t`` -> custom ``cos(t / 3600)``;
d. only dt and interval (``0.5`` hours, ``2`` days);
e. Save without changing anything (a preset row, a custom row).

An edit (a-d) says "changed successfully", the list shows the new ``y = …``, and
the stored row has what was chosen, a new run that ended done, and a chart whose
render stage drew exactly that (``trace["render"]["drawn"]``). An unchanged
form (e) says "Nothing changed" and starts no run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.urls import reverse
from playwright.sync_api import Locator, Page

from functions.models import Function
from tests.e2e.conftest import off_loop, sign_in
from tests.e2e.test_user_story import LIST_URL, WAIT_SECONDS
from tests.stack import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

CUSTOM = "Custom expression…"  # the select's option for a typed expression


@dataclass(frozen=True)
class Edit:
    start: str  # the row's expression before the edit (dt 1 hour, interval 1 day)
    pick: str | None = None  # the "Function" option to select (None: leave it)
    box: str | None = None  # what to type into "Custom expression" (None: leave it)
    dt: str | None = None  # what to type into dt / interval (None: leave them)
    interval: str | None = None
    expected: tuple[str, float, float] = ("", 1.0, 1.0)  # the stored (expression, dt, interval)


EDITS = {
    "a-preset-to-preset": Edit("t + 2/t", pick="y = sin(t)", expected=("sin(t)", 1.0, 1.0)),
    "b-custom-to-preset-text-left": Edit("t*t + 1", pick="y = sin(t)", expected=("sin(t)", 1.0, 1.0)),
    "c-preset-to-custom": Edit("t + 2/t", pick=CUSTOM, box="cos(t / 3600)", expected=("cos(t / 3600)", 1.0, 1.0)),
    "d-dt-and-interval-only": Edit("t + 2/t", dt="0.5", interval="2", expected=("t + 2/t", 0.5, 2.0)),
}
UNCHANGED = {"e-unchanged-preset": Edit("sin(t)"), "e-unchanged-custom": Edit("t*t + 1")}


# Fixtures and helpers ------------------------------------------------------------


@pytest.fixture
def start(edit: Edit, stack, transactional_db, clean_status) -> Function:
    """The row to edit, processed by the real pipeline; created before the ``page`` fixture starts Playwright."""
    from functions import services

    function = services.create_function(expression=edit.start, dt=1, interval=1)
    return settled(function.pk, stack)


def settled(pk: int, stack, newer_than=None) -> Function:
    """The row once its latest run (other than ``newer_than``) is stored; a bounded poll, in this thread."""

    def outcome() -> Function | None:
        function = Function.objects.get(pk=pk)
        done = function.state != Function.State.QUEUED and function.result_run == function.run_id
        return function if done and function.run_id != newer_than else None

    try:
        return wait_until(outcome, WAIT_SECONDS, f"row {pk} to settle", poll=0.1)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}: {Function.objects.get(pk=pk).__dict__}\n{stack.logs()}") from None


def list_row(page: Page, pk: int) -> Locator:
    """The list row of ``pk`` (by its link: the seeded row may read ``y = sin(t)`` too)."""
    change_url = reverse("admin:functions_function_change", args=[pk])
    return page.locator("#result_list tbody tr").filter(has=page.locator(f'th.field-function a[href^="{change_url}"]'))


def shown_function(page: Page, pk: int) -> str:
    return " ".join(list_row(page, pk).locator("th.field-function").inner_text().split())


def open_change_form(page: Page, row: Function) -> None:
    """Sign in, click the row in the list; the form shows the row as stored."""
    sign_in(page)
    assert list_row(page, row.pk).count() == 1, f"no list row for {row}"
    list_row(page, row.pk).locator("th.field-function a").click()
    page.wait_for_url(f"**{reverse('admin:functions_function_change', args=[row.pk])}")
    preset = row.expression if row.expression in ("t + 2/t", "sin(t)") else None
    select = function_select(page)
    chosen = select.evaluate("s => s.options[s.selectedIndex].text").strip()
    assert chosen == (f"y = {preset}" if preset else CUSTOM), f"the form shows {chosen!r} for {row}"
    assert page.get_by_label("Custom expression").input_value() == ("" if preset else row.expression)


def function_select(page: Page) -> Locator:
    """The "Function" select (its label reads "Function:"; strict: exactly one)."""
    return page.get_by_label("Function:", exact=True)


def save(page: Page) -> list[str]:
    """Click Save; the list opens; returns the messages it shows."""
    with page.expect_navigation(url=f"**{LIST_URL}"):
        page.locator("input[name=_save]").click()
    return [" ".join(text.split()) for text in page.locator("ul.messagelist li").all_inner_texts()]


# The edits -------------------------------------------------------------------------


@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_an_edit_in_the_browser_saves_and_draws_what_was_chosen(edit: Edit, start: Function, page: Page, stack):
    open_change_form(page, start)
    if edit.pick is not None:
        function_select(page).select_option(label=edit.pick)
    if edit.box is not None:
        page.get_by_label("Custom expression").fill(edit.box)
    if edit.dt is not None:
        page.get_by_label("dt, hours").fill(edit.dt)
    if edit.interval is not None:
        page.get_by_label("interval, days").fill(edit.interval)
    if edit.start == "t*t + 1":  # case b: the old text is still in the box when Save is clicked
        assert page.get_by_label("Custom expression").input_value() == "t*t + 1"

    messages = save(page)
    expression, dt, interval = edit.expected
    assert any("changed successfully" in m for m in messages), messages
    assert not any("Nothing changed" in m for m in messages), messages
    assert shown_function(page, start.pk) == f"y = {expression}", "the list shows the row unchanged"

    after = off_loop(settled, start.pk, stack, newer_than=start.run_id)
    assert (after.expression, after.dt, after.interval) == (expression, dt, interval), "the edit was not saved"
    assert after.run_id != start.run_id and after.state == Function.State.DONE, after.error
    assert after.trace["render"]["drawn"] == {"expression": expression, "dt": dt, "interval": interval}


@pytest.mark.parametrize("edit", UNCHANGED.values(), ids=UNCHANGED.keys())
def test_saving_the_form_unchanged_in_the_browser_says_nothing_changed(edit: Edit, start: Function, page: Page):
    open_change_form(page, start)
    messages = save(page)
    assert any("Nothing changed" in m for m in messages), messages
    assert not any("changed successfully" in m for m in messages), messages
    assert shown_function(page, start.pk) == f"y = {edit.start}"
    after = off_loop(Function.objects.get, pk=start.pk)
    assert (after.run_id, after.result_run, after.expression) == (start.run_id, start.result_run, edit.start)
