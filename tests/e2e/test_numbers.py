"""Issue 23 point 2 in a real browser, in English and in Russian: numbers as people write them.

- the change form shows a row's dt as the list does (``0.0167`` / ``0,0167`` for 1/60 h), and
  saving it unchanged says "Nothing changed" and leaves the row bit for bit (dt exactly 1/60);
- an ambiguous entry (``1,000``) is refused on its field, saying how each notation reads it,
  and nothing is saved;
- what the reader's notation writes (``1,000.5`` in English, ``1 000,5`` in Russian) is stored
  as that number.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page

from functions.models import Function
from tests.e2e.conftest import off_loop, sign_in
from tests.e2e.test_edit import list_row, save, settled
from tests.e2e.test_user_story import WAIT_SECONDS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

MINUTE = 1 / 60

SHOWN = {"en": ("0.0167", "0.0167 h (1 min)"), "ru": ("0,0167", "0,0167 ч (1 мин)")}
NOTHING_CHANGED = {"en": "Nothing changed", "ru": "ничего не изменилось"}
AMBIGUOUS = {
    "en": "interval, days: “1,000” is ambiguous: read as 1000 in English notation, as 1 in Russian notation. "
    "Type 1000 or 1.",
    "ru": "interval, дни: «1,000» неоднозначно: 1 в русской записи, но 1000 в английской записи. Введите 1 или 1000.",
}
THOUSAND_AND_A_HALF = {"en": "1,000.5", "ru": "1 000,5"}
DOC_SCREENSHOTS = {  # README, "What you see" item 2
    "en": {"change-form-ambiguous": "number-ambiguous.png"},
    "ru": {"change-form-ambiguous": "number-ambiguous-ru.png"},
}


@pytest.fixture
def minute_row(stack, transactional_db, clean_status) -> Function:
    """A day of minutes (dt = 1/60 h, as the add form's ``0.0167`` never gives), processed by the real pipeline."""
    from functions import services

    function = services.create_function(expression="sin(t/600)", dt=MINUTE, interval=1)
    return settled(function.pk, stack)


def field_errors(page: Page, name: str) -> list[str]:
    return [" ".join(t.split()) for t in page.locator(f".field-{name} ul.errorlist li").all_inner_texts()]


@pytest.mark.parametrize("lang", ["en", "ru"], indirect=True)
def test_the_change_form_shows_the_lists_digits_and_an_unchanged_save_keeps_the_row(
    minute_row: Function, page: Page, shots, lang, stack
):
    sign_in(page)
    digits, cell = SHOWN[lang]
    assert " ".join(list_row(page, minute_row.pk).locator("td.field-dt_human").inner_text().split()) == cell
    list_row(page, minute_row.pk).locator("th.field-function a").click()
    page.wait_for_url(f"**{reverse('admin:functions_function_change', args=[minute_row.pk])}")
    assert page.locator("input[name=dt]").input_value() == digits
    assert page.locator("input[name=interval]").input_value() == "1"
    shots(page, "change-form-numbers")

    messages = save(page)
    assert any(NOTHING_CHANGED[lang] in m for m in messages), messages
    after = off_loop(Function.objects.get, pk=minute_row.pk)
    assert after.dt == MINUTE, f"the unchanged form stored dt {after.dt!r}, not 1/60"
    assert (after.interval, after.expression, after.run_id, after.result_run, after.processed_at) == (
        minute_row.interval,
        minute_row.expression,
        minute_row.run_id,
        minute_row.result_run,
        minute_row.processed_at,
    )

    # An ambiguous interval: refused on its field with both readings; the row stays as it was.
    list_row(page, minute_row.pk).locator("th.field-function a").click()
    page.locator("input[name=interval]").fill("1,000")
    page.locator("input[name=_save]").click()
    page.wait_for_selector(".field-interval ul.errorlist")
    assert field_errors(page, "interval") == [AMBIGUOUS[lang]]
    assert field_errors(page, "dt") == []
    assert page.locator("input[name=interval]").input_value() == "1,000"  # the entry left to correct
    assert page.locator("input[name=dt]").input_value() == digits
    shots(page, "change-form-ambiguous")
    assert off_loop(Function.objects.get, pk=minute_row.pk).interval == minute_row.interval

    # Written the reader's way, with its grouping: stored as that number (dt still exactly 1/60).
    page.locator("input[name=interval]").fill(THOUSAND_AND_A_HALF[lang])
    page.locator("input[name=_save]").click()
    page.wait_for_url(f"**{reverse('admin:functions_function_changelist')}", timeout=WAIT_SECONDS * 1000)
    edited = off_loop(settled, minute_row.pk, stack, newer_than=minute_row.run_id)
    assert (edited.dt, edited.interval) == (MINUTE, 1000.5), (edited.dt, edited.interval)
    shots.publish(DOC_SCREENSHOTS[lang])
