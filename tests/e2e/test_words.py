"""Every kind of error message, walked in a real browser in Russian and in English (issue 23).

The browser's locale picks the admin's language (Accept-Language). In ``ru`` the walk reads:
the list's stored error of a failing row, the add form's refusals (a bad expression, dt ≤ 0,
too many samples), the change (detail) page's error, the live rows of a failing refresh
(the cells the server renders into ``live-rows.json``) and the CSV's 409 page; each message
must be the Russian words of its code, with no English left in it. In ``en`` the same walk
reads the English words. ``test_every_code_has_russian_words`` fails on any code datagen or
the pipeline can emit that has no Russian translation (the codes read from their sources).

Screenshots: var/artifacts/e2e/<NN>-<lang>-*.png; with E2E_UPDATE_DOCS=1 the Russian add-form
error and failed row go to docs/screenshots/ (the README's "Error codes").
"""

from __future__ import annotations

import html
import re
import time

import pytest
from django.urls import reverse
from django.utils import timezone, translation
from playwright.sync_api import Locator, Page

from functions import messages
from functions.models import Function
from tests.e2e.conftest import off_loop, sign_in
from tests.test_error_words import every_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

LIST_URL = reverse("admin:functions_function_changelist")
ADD_URL = reverse("admin:functions_function_add")
LIVE_URL = reverse("admin:functions_function_live_rows")
WAIT_SECONDS = 60

FAILING = "1/(t - t)"
WORDS = {
    "ru": {
        "failed": "Этап «расчёт точек» не удался: ошибка вычисления: деление на ноль",
        "syntax": "неожиданное «*» в позиции 4, ожидалось: число, t, константа, функция или «(»",
        "dt": "dt должен быть от 1 мс",
        "samples": "interval 3\xa0650 дн. при dt 0,001 ч даёт отсчётов: 87\xa0600\xa0001; предел — 10\xa0000\xa0000",
        "raw": "без прореживания отдаётся не больше 1\xa0000\xa0000",
        "window": "В этом окне 5\xa0256\xa0001 отсчётов",
        "refresh": "Обновить",
        "failed_state": "Ошибка",
    },
    "en": {
        "failed": "Stage “generating points” failed: math error: division by zero",
        "syntax": "unexpected “*” at position 4, expected a number, t, a constant, a function or “(”",
        "dt": "dt must be between 1 ms",
        "samples": "interval 3,650 d at dt 0.001 h gives 87,600,001 samples; the limit is 10,000,000",
        "raw": "at most 1,000,000 are given without decimation",
        "window": "This window has 5,256,001 samples",
        "refresh": "Refresh",
        "failed_state": "Failed",
    },
}
# What may stay in Latin letters in a Russian message: names and placeholders' values.
NAMES = re.compile(r"datagen|interval|dt\b|PostgreSQL|HTTP|JSON|PNG|CSV|M4|pi\b|y = [^\s]+|sin\(t\)")
DOCS = {"ru": {"add-form-error": "add-form-error-ru.png", "failed-row": "failed-row-ru.png"}}


def assert_readable(text: str, lang: str, expected: str) -> None:
    """``text`` holds ``expected``, and in Russian no English word (4+ Latin letters) outside the names."""
    assert expected in text, f"{expected!r} not in {text!r}"
    if lang == "ru":
        left = re.findall(r"[A-Za-z]{4,}", NAMES.sub("", text))
        assert not left, f"English in a Russian message: {left} in {text!r}"


@pytest.fixture
def failing(stack, transactional_db, clean_status) -> Function:
    """A row whose function fails in PostgreSQL (division by zero), processed by the real pipeline."""
    from django.conf import settings

    from functions import selectors, services

    function = services.create_function(expression=FAILING, dt=1, interval=1)
    assert selectors.wait_for_outcome(function.pk, function.run_id, settings.ADD_WAIT_SECONDS), stack.logs()
    function.refresh_from_db()
    assert function.error_code == "math_error", function.error
    return function


@pytest.fixture
def too_big_for_csv(transactional_db) -> Function:
    """A row whose window (10 years at 1 minute: 5,256,001 samples) is more than datagen returns raw."""
    return Function.objects.create(
        expression="sin(t)", dt=1 / 60, interval=3650, state=Function.State.DONE, processed_at=timezone.now()
    )


def row(page: Page, expression: str) -> Locator:
    exact = re.compile(rf"^\s*{re.escape('y = ' + expression)}\s*$")
    return page.locator("#result_list tbody tr").filter(has=page.locator("th.field-function", has_text=exact))


def submit_add_form(page: Page, expression: str, dt: str, interval: str) -> None:
    page.goto(ADD_URL)
    page.select_option("select[name=preset]", "__custom__")
    page.fill("input[name=expression]", expression)
    page.fill("input[name=dt]", dt)
    page.fill("input[name=interval]", interval)
    with page.expect_navigation():
        page.locator("input[name=_save]").click()
    assert page.locator("p.errornote").count() == 1, "the form was not refused"


def field_errors(page: Page, name: str) -> str:
    return " ".join(page.locator(f".field-{name} ul.errorlist").all_inner_texts())


def test_every_code_has_russian_words():
    """Each code datagen and the pipeline can emit, worded under ``ru``, differs from its English."""
    untranslated = []
    for key in every_key():
        with translation.override("en"):
            english = str(messages.CATALOG[key])
        with translation.override("ru"):
            if str(messages.CATALOG[key]) == english:
                untranslated.append(key)
    assert not untranslated, f"codes without Russian words: {untranslated}"


@pytest.mark.parametrize("lang", ["ru", "en"], indirect=True)
def test_every_message_kind_reads_in_the_readers_language(failing, too_big_for_csv, page: Page, shots, lang):
    words = WORDS[lang]
    sign_in(page)

    # The list: the failing row's stored error, worded from its code. -----------------------------------
    error = row(page, FAILING).locator("pre.fd-error")
    assert_readable(error.inner_text(), lang, words["failed"])
    shots(page, "failed-row")

    # The add form: a bad expression, dt ≤ 0, too many samples. -----------------------------------------
    rows_before = off_loop(lambda: Function.objects.count())
    submit_add_form(page, "t + * 2", "1", "1")
    assert_readable(field_errors(page, "expression"), lang, words["syntax"])
    shots(page, "add-form-error")
    submit_add_form(page, "sin(t)", "0", "1")
    assert_readable(field_errors(page, "dt"), lang, words["dt"])
    submit_add_form(page, "sin(t)", "0,001" if lang == "ru" else "0.001", "3650")
    assert_readable(field_errors(page, "dt"), lang, words["samples"])
    shots(page, "add-form-samples")
    assert off_loop(lambda: Function.objects.count()) == rows_before, "a refused function was saved"

    # The change (detail) page: the error of the last run. ------------------------------------------------
    page.goto(reverse("admin:functions_function_change", args=[failing.pk]))
    assert_readable(page.locator(".field-error_text pre.fd-error").inner_text(), lang, words["failed"])
    shots(page, "detail-error")

    # A failing refresh: the live rows the page polls are the server's words. -----------------------------
    page.goto(LIST_URL)
    row(page, FAILING).locator("input.action-select").check()
    page.locator("select[name=action]").select_option(label=words["refresh"])
    with page.expect_navigation():
        page.locator("button[name=index]").click()
    deadline = time.monotonic() + WAIT_SECONDS
    while True:  # the new run's outcome stored
        refreshed = off_loop(lambda: Function.objects.get(pk=failing.pk))
        if refreshed.run_id != failing.run_id and refreshed.result_run == refreshed.run_id:
            break
        assert time.monotonic() < deadline, "the refresh of the failing row did not end"
        page.wait_for_timeout(200)
    assert refreshed.error_code == "math_error", refreshed.error
    status = row(page, FAILING).locator("td.field-status")
    status.filter(has_text=words["failed_state"]).wait_for(timeout=WAIT_SECONDS * 1000)
    assert_readable(row(page, FAILING).locator("pre.fd-error").inner_text(), lang, words["failed"])
    # As the page's script asks it (the browser's own request, its language).
    live = page.evaluate(
        "async url => (await fetch(url, {credentials: 'same-origin'})).json()", f"{LIVE_URL}?ids={failing.pk}"
    )
    cell = live["rows"][0]["cells"]["chart_or_error"]
    assert_readable(html.unescape(re.sub(r"<[^>]+>", "", cell)), lang, words["failed"])
    shots(page, "refreshed-failing-row")

    # The CSV's 409: more samples than datagen returns raw. ------------------------------------------------
    response = page.goto(reverse("admin:functions_function_csv", args=[too_big_for_csv.pk]))
    assert response.status == 409, response.status
    assert_readable(page.locator("p.errornote").inner_text(), lang, words["raw"])
    assert words["window"] in page.locator("#content").inner_text()
    shots(page, "csv-refused")

    shots.publish(DOCS.get(lang, {}))
