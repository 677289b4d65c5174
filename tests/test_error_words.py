"""Errors as data, words at the edge (issue 23): datagen's and the pipeline's codes, worded by
``functions.messages`` in the reader's language.

Unit: every code datagen and the pipeline can emit has its words and a Russian translation;
numbers are written the reader's way; an unknown code or an old row shows its English text;
the metrics' cause stays one of the codes; the README's glossary lists them all.
System (real stack): a failing row stores datagen's code and parameters, and the list, the
detail page, the live rows and the add form say it in Russian.
"""

from __future__ import annotations

import ast
import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import translation

from functions import messages
from functions.models import Function
from pipeline import api
from tests.stack import ROOT

LIST_URL = reverse("admin:functions_function_changelist")
ADD_URL = reverse("admin:functions_function_add")
LIVE_URL = reverse("admin:functions_function_live_rows")


def _literal(path: str, name: str):
    """A module-level literal of another service's source (no import across services)."""
    tree = ast.parse((ROOT / path).read_text())
    for node in tree.body:
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in {path}")


DATAGEN_CODES: dict[str, list[str]] = _literal("datagen/series/errors.py", "CODES")
MATH_REASONS: dict[str, str] = _literal("datagen/series/errors.py", "MATH_REASONS")
EXPECTED: dict[str, str] = _literal("datagen/series/expressions.py", "EXPECTED")


def every_key() -> list[str]:
    """Every catalog key datagen and the pipeline can emit: ``code`` or ``code.kind``."""
    keys = [code if not kind else f"{code}.{kind}" for code, kinds in DATAGEN_CODES.items() for kind in kinds]
    return keys + sorted(api.FAILURE_CODES)


def test_the_pipeline_knows_datagens_codes_as_datagen_lists_them():
    assert set(DATAGEN_CODES) == set(api.DATAGEN_CODES)


@pytest.mark.parametrize("key", every_key())
def test_every_code_has_words_and_a_russian_translation(key):
    assert key in messages.CATALOG, f"{key}: no words in functions.messages.CATALOG"
    with translation.override("en"):
        english = str(messages.CATALOG[key])
    with translation.override("ru"):
        russian = str(messages.CATALOG[key])
    assert russian != english, f"{key}: no Russian translation of {english!r}"
    names = r"%\(\w+\)s|datagen|interval|PostgreSQL|HTTP|JSON|PNG|pi\b"  # placeholders and names
    assert not re.search(r"[a-z]{4,}", re.sub(names, "", russian)), f"{key}: English left in {russian!r}"


def test_every_word_a_message_is_made_of_is_translated():
    same = {"dt", "interval", "t", "datagen"}  # names, the same in both languages
    assert set(MATH_REASONS.values()) <= set(messages._WORDS["reason"])
    assert set(EXPECTED) == set(messages._WORDS["expected"])
    for kind, words in messages._WORDS.items():
        for value, word in words.items():
            with translation.override("en"):
                english = str(word)
            if english in same:
                continue
            with translation.override("ru"):
                assert str(word) != english, f"{kind} {value}: {english!r} untranslated"


SAMPLES = {"kind": "total", "limit": 10_000_000, "interval": 3650, "dt": 1e-7, "samples": 876_000_000_001}


def test_numbers_inside_messages_are_written_the_readers_way():
    problem = {"code": "too_many_samples", "params": SAMPLES, "message": "English"}
    with translation.override("en"):
        english = messages.datagen_problem(problem, "dt")
    with translation.override("ru"):
        russian = messages.datagen_problem(problem, "dt")
    assert english == "interval 3,650 d at dt 1×10⁻⁷ h gives 876,000,000,001 samples; the limit is 10,000,000"
    assert russian == (
        "interval 3\xa0650 дн. при dt 1×10⁻⁷ ч даёт отсчётов: 876\xa0000\xa0000\xa0001; предел — 10\xa0000\xa0000"
    )
    with translation.override("ru"):
        bounds = {"value": 1e6, "low": 1 / 86_400_000_000, "high": 36_525.0, "unit": "days"}
        text = messages.datagen_problem({"code": "out_of_range", "params": bounds, "message": "x"}, "interval")
    assert text == "interval должно быть от 1,16×10⁻¹¹ до 36\xa0525 дн."


def test_a_syntax_error_says_what_was_expected_in_russian():
    params = {"kind": "unexpected_token", "position": 3, "token": "*"}
    params["expected"] = ["number", "variable", "constant", "function", "open_parenthesis"]
    with translation.override("ru"):
        text = messages.datagen_problem({"code": "syntax", "params": params, "message": "x"}, "expression")
    assert text == "неожиданное «*» в позиции 3, ожидалось: число, t, константа, функция или «(»"


def test_a_stored_failure_names_its_stage_and_its_retries():
    params = {"stage": "render", "service": "export server", "url": "http://x:7801", "attempts": 10}
    params["retried_for"] = 200
    with translation.override("ru"):
        text = messages.stored_error("unreachable", params, "English")
    assert (
        text == "Этап «отрисовка» не удался: сервер экспорта недоступен (попыток: 10 за 200 с, больше не повторяется)"
    )
    with translation.override("en"):
        text = messages.stored_error("unreachable", params, "English")
    assert text == "Stage “rendering” failed: the export server is unreachable (gave up after 10 attempts in 200 s)"


def test_an_old_row_an_unknown_code_and_odd_parameters_show_the_english_text():
    with translation.override("ru"):
        assert messages.stored_error("", {}, 'Stage "points" failed: old text') == 'Stage "points" failed: old text'
        assert messages.stored_error("new_code_of_2030", {"stage": "points"}, "the English") == "the English"
        assert messages.stored_error("syntax", {"stage": "points", "kind": "new_kind"}, "the English") == "the English"
        odd = {"stage": "nowhere", "reason": "division_by_zero"}
        assert messages.stored_error("math_error", odd, "the English") == "the English"
        missing = {"kind": "unexpected_token", "position": 3}  # no token, no expected
        assert (
            messages.datagen_problem({"code": "syntax", "params": missing, "message": "the English"}) == "the English"
        )
        other = {"stage": "points", "reason": "other", "detail": "a new PostgreSQL message"}
        assert messages.stored_error("math_error", other, "x") == (
            "Этап «расчёт точек» не удался: ошибка вычисления: a new PostgreSQL message"
        )


def test_the_metrics_cause_is_a_known_code_or_other():
    from pipeline.metrics import cause_label

    for code in every_key():
        code = code.split(".")[0]
        assert cause_label(code) == code
    assert cause_label("lost") == "lost"
    for text in ("http_502", "division by zero", "Timeout", "x" * 41):
        assert cause_label(text) == "other"


def test_the_readme_glossary_lists_every_code():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Error codes", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([a-z_]+)`", section))
    codes = {key.split(".")[0] for key in every_key()} | {
        kind for kinds in DATAGEN_CODES.values() for kind in kinds if kind
    }
    assert codes <= listed, f"missing from the README's Error codes: {sorted(codes - listed)}"


# System: the real stack ------------------------------------------------------------------------


@pytest.fixture
def signed_in(client, transactional_db):
    client.force_login(get_user_model().objects.create_superuser("words", "words@example.com", "pw-for-tests-1"))
    return client


@pytest.mark.django_db(transaction=True)
@pytest.mark.stack
def test_a_failing_row_stores_the_code_and_reads_in_russian(stack, signed_in):
    from functions import selectors, services

    failing = services.create_function(expression="1/(t - t)", dt=1, interval=1)
    assert selectors.wait_for_outcome(failing.pk, failing.run_id, settings.ADD_WAIT_SECONDS), stack.logs()
    failing.refresh_from_db()
    assert failing.state == Function.State.FAILED
    assert failing.error.startswith('Stage "points" failed: datagen answered HTTP 422: division by zero')
    assert failing.error_code == "math_error"
    assert failing.error_params == {
        "stage": "points",
        "status": 422,
        "field": "expression",
        "reason": "division_by_zero",
        "detail": "division by zero",
        "sqlstate": "22012",
    }
    old = Function.objects.create(
        expression="t", dt=1, interval=1, state=Function.State.FAILED, error='Stage "render" failed: as stored in 2025'
    )

    russian = "Этап «расчёт точек» не удался: ошибка вычисления: деление на ноль"
    ru = {"accept-language": "ru"}
    page = signed_in.get(LIST_URL, headers=ru).content.decode()
    assert russian in page and "division by zero" not in page
    assert "as stored in 2025" in page  # the old row's text, as it was stored
    detail = signed_in.get(reverse("admin:functions_function_change", args=[failing.pk]), headers=ru)
    assert russian in detail.content.decode()
    live = signed_in.get(LIVE_URL, {"ids": f"{failing.pk},{old.pk}"}, headers=ru).json()
    cells = {row["id"]: row["cells"]["chart_or_error"] for row in live["rows"]}
    assert russian in cells[failing.pk] and "as stored in 2025" in cells[old.pk]
    english = signed_in.get(LIST_URL, headers={"accept-language": "en"}).content.decode()
    assert "Stage “generating points” failed: math error: division by zero" in english


@pytest.mark.django_db(transaction=True)
@pytest.mark.stack
def test_the_add_form_says_datagens_refusals_in_russian(stack, signed_in):
    ru = {"accept-language": "ru"}
    data = {"preset": "__custom__", "expression": "t + * 2", "dt": "1", "interval": "1"}
    page = signed_in.post(ADD_URL, data, headers=ru).content.decode()
    assert "неожиданное «*» в позиции 4, ожидалось: число, t, константа, функция или «(»" in page
    data = {"preset": "__custom__", "expression": "sin(t)", "dt": "0,001", "interval": "3650"}
    page = signed_in.post(ADD_URL, data, headers=ru).content.decode()
    assert "interval 3\xa0650 дн. при dt 0,001 ч даёт отсчётов: 87\xa0600\xa0001; предел — 10\xa0000\xa0000" in page
    assert not Function.objects.exists()
