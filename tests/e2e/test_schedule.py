"""A real browser sets a refresh schedule on the change form and sees the row refresh itself, in English and Russian.

The e2e stack runs no beat; the schedule's tick runs here as beat's task runs it: the
real ``services.dispatch_due_schedules`` every 2 s in a background thread, on the same
database as the live server. The list page is never reloaded or clicked after Save: the
row's processing date must change by itself (the list polls the scheduled rows) within
a bounded wait, a 1-minute schedule being at most a minute away.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.db import connections
from django.urls import reverse

from functions import services
from functions.models import Function
from tests.e2e.conftest import off_loop, sign_in
from tests.e2e.test_edit import list_row, settled

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

WORDS = {"en": ("Save", "every 1 min"), "ru": ("Сохранить", "раз в 1 мин")}


@pytest.fixture
def ticking(stack, transactional_db) -> Iterator[None]:
    """The schedule's tick every 2 s (beat's task, called directly), until the test ends."""
    stop = threading.Event()

    def tick() -> None:
        try:
            while not stop.wait(2):
                services.dispatch_due_schedules()
        finally:
            connections.close_all()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=30)


@pytest.fixture
def row(stack, transactional_db, clean_status):
    function = services.create_function(expression="t + 2/t", dt=1, interval=1)
    return settled(function.pk, stack)


@pytest.mark.parametrize("lang", ["en", "ru"], indirect=True)
def test_a_row_with_a_one_minute_schedule_refreshes_itself_on_time(row, ticking, page, lang):
    save, every = WORDS[lang]
    sign_in(page)
    page.goto(reverse("admin:functions_function_change", args=[row.pk]))
    page.locator("#id_refresh_every_0").fill("1")
    page.locator("#id_refresh_every_1").select_option("60")
    page.get_by_role("button", name=save, exact=True).click()
    page.wait_for_url(f"**{reverse('admin:functions_function_changelist')}")
    cells = list_row(page, row.pk)
    assert every in " ".join(cells.locator("td.field-schedule").inner_text().split())
    before = cells.locator("td.field-processing_date").inner_text()
    # No click, no reload: the list's own polling shows the scheduled refresh (at most a minute
    # away, plus the tick, the chart and a 10 s poll).
    selector = f'#result_list input.action-select[value="{row.pk}"]'
    page.wait_for_function(
        "([selector, before]) => {"
        " const tr = document.querySelector(selector).closest('tr');"
        " const date = tr.querySelector('td.field-processing_date').innerText;"
        " return date !== before && !tr.querySelector('td.field-status .fd-running'); }",
        arg=[selector, before],
        timeout=150_000,
        polling=500,
    )
    row = off_loop(Function.objects.get, pk=row.pk)  # Playwright's loop runs in this thread
    assert row.refresh_every == 60 and row.state == "done" and row.result_run == row.run_id
