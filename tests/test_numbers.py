"""Issue 23 point 2: numbers read as people write them, in the reader's notation, and shown so.

English ``1,000.5`` / ``1000.5``; Russian ``1 000,5`` (any space) / ``1000,5``; ``.5`` and ``1e-3``
everywhere. What the two notations read as different numbers (``1,000``) is refused, saying both
readings; hostile input is refused with a message naming the field. The change form shows a row's
numbers as the list does (``0,0167``) and saving it unchanged keeps the stored row bit for bit.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import translation

from functions.forms import FunctionForm
from functions.models import Function
from functions.numbers import MAX_NUMBER_LENGTH, NumberError, format_input, parse_number

MINUTE = 1 / 60

ACCEPTED = {
    "en": [
        ("1,000.5", 1000.5),
        ("1000.5", 1000.5),
        ("1,000,000", 1e6),
        ("1 000.5", 1000.5),  # a space groups thousands in every notation
        (".5", 0.5),
        ("0.5", 0.5),
        ("1e-3", 0.001),
        ("1E3", 1000.0),
        ("2.5e7", 2.5e7),
        (" 2 ", 2.0),
        ("-1.5", -1.5),
        ("1.000", 1.0),  # a dot is a decimal point in both notations
        ("0.0167", 0.0167),
    ],
    "ru": [
        ("1 000,5", 1000.5),
        ("1\u00a0000,5", 1000.5),  # no-break space
        ("1\u202f000,5", 1000.5),  # narrow no-break space
        ("1000,5", 1000.5),
        ("1000.5", 1000.5),  # the decimal point reads the same in both notations
        (".5", 0.5),
        ("0,5", 0.5),
        ("1e-3", 0.001),
        ("2,5e7", 2.5e7),
        ("0,125", 0.125),  # no English thousands start with 0
        ("12,34", 12.34),
        ("0,0167", 0.0167),
        ("-1,5", -1.5),
    ],
}


@pytest.mark.parametrize(
    ("lang", "text", "value"), [(lang, t, v) for lang, cases in ACCEPTED.items() for t, v in cases]
)
def test_numbers_as_people_write_them(lang, text, value):
    with translation.override(lang):
        assert parse_number(text) == value


# (language, typed, what the message must say: how it was read, how to write it)
AMBIGUOUS = [
    (
        "en",
        "1,000",
        "“1,000” is ambiguous: read as 1000 in English notation, as 1 in Russian notation. Type 1000 or 1.",
    ),
    ("en", "1,250", "“1,250” is ambiguous: read as 1250 in English notation, as 1.25 in Russian notation."),
    ("ru", "1,000", "«1,000» неоднозначно: 1 в русской записи, но 1000 в английской записи. Введите 1 или 1000."),
    ("ru", "1,250", "«1,250» неоднозначно: 1,25 в русской записи, но 1250 в английской записи. Введите 1,25 или 1250."),
]


@pytest.mark.parametrize(("lang", "text", "message"), AMBIGUOUS)
def test_an_ambiguous_entry_is_refused_saying_how_it_was_read(lang, text, message):
    with translation.override(lang), pytest.raises(NumberError) as refused:
        parse_number(text)
    assert str(refused.value).startswith(message), str(refused.value)


NOT_IN_THIS_NOTATION = [
    ("en", "1,5", "did you mean 1.5?"),  # Russian reads 1.5; English groups thousands by three
    ("en", "0,5", "did you mean 0.5?"),
    ("en", "1 000,5", "did you mean 1000.5?"),
    ("en", "1000,5", "did you mean 1000.5?"),
    ("ru", "1,000.5", "1000,5?"),
    ("ru", "1,000,000", "1000000?"),
]


@pytest.mark.parametrize(("lang", "text", "hint"), NOT_IN_THIS_NOTATION)
def test_an_entry_of_the_other_notation_is_refused_with_its_reading(lang, text, hint):
    with translation.override(lang), pytest.raises(NumberError) as refused:
        parse_number(text)
    example = {"en": "1,000.5", "ru": "1\u00a0000,5"}[lang]
    assert example in str(refused.value) and str(refused.value).endswith(hint), str(refused.value)


HOSTILE = {
    "empty": "",
    "spaces": "   ",
    "nan": "nan",
    "NaN": "NaN",
    "inf": "inf",
    "-Infinity": "-Infinity",
    "1e400": "1e400",
    "-1e400": "-1e400",
    "huge exponent": "1e999999999999999999",
    "tiny": "1e-400",
    "tiny exponent": "1e-999999999999999999",
    "10 000 digits": "9" * 10_000,
    "41 characters": "1" * (MAX_NUMBER_LENGTH + 1),
    "underscore": "1_000",
    "words": "abc",
    "two signs": "--1",
    "arabic digits": "١٢",
    "hex": "0x10",
    "two points": "1.5.6",
    "three commas": "1,5,6",
    "German": "1.000,5",
    "bad grouping": "1 00",
    "exponent alone": "e5",
}


@pytest.mark.parametrize("lang", ["en", "ru"])
@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_is_refused_with_a_clear_message(lang, text):
    with translation.override(lang), pytest.raises(NumberError) as refused:
        parse_number(text)
    message = str(refused.value)
    assert 0 < len(message) < 200, message  # said briefly, the 10 000 digits not echoed
    assert "Decimal" not in message and "float" not in message and "Traceback" not in message


FIELD_LABELS = {"en": ("dt, hours: ", "interval, days: "), "ru": ("dt, часы: ", "interval, дни: ")}


@pytest.mark.parametrize("lang", ["en", "ru"])
@pytest.mark.parametrize(
    "text", [t for t in HOSTILE.values() if t.strip()], ids=[k for k, t in HOSTILE.items() if t.strip()]
)
def test_the_form_names_the_field_of_a_hostile_number(lang, text):
    dt_label, interval_label = FIELD_LABELS[lang]
    with translation.override(lang):
        form = FunctionForm(data={"preset": "sin(t)", "expression": "", "dt": text, "interval": text})
        assert not form.is_valid()
        assert set(form.errors) == {"dt", "interval"}, form.errors
        assert form.errors["dt"] == [dt_label + str(parse_error(text))], form.errors["dt"]
        assert form.errors["interval"] == [interval_label + str(parse_error(text))], form.errors["interval"]
    if len(text) > MAX_NUMBER_LENGTH:
        assert "10000" in form.errors["dt"][0] or str(len(text)) in form.errors["dt"][0]


def parse_error(text: str) -> NumberError:
    with pytest.raises(NumberError) as refused:
        parse_number(text)
    return refused.value


@pytest.mark.parametrize(
    ("value", "en", "ru"),
    [
        (MINUTE, "0.0167", "0,0167"),
        (0.5, "0.5", "0,5"),
        (1.25, "1.25", "1,25"),
        (3650.0, "3650", "3650"),  # never grouped: "3,650" would be ambiguous
        (1000.5, "1000.5", "1000,5"),
        (2.5e7, "2.5e7", "2,5e7"),  # the list's 2.5×10⁷, typeable
        (3e-7, "3e-7", "3e-7"),
    ],
)
def test_the_form_shows_a_number_as_the_list_does_and_reads_it_back(value, en, ru):
    for lang, shown in (("en", en), ("ru", ru)):
        with translation.override(lang):
            assert format_input(value) == shown
            assert parse_number(shown) == float(shown.replace(",", "."))


# The change form, through the real admin -----------------------------------------------------


@pytest.fixture
def boss() -> Client:
    user = get_user_model().objects.create_superuser("numbers", "numbers@example.com", "pw-for-tests-1")
    client = Client()
    client.force_login(user)
    return client


def form_values(html: str) -> dict[str, str]:
    """The change form's text inputs as the browser would send them back."""
    values = {}
    for tag in re.findall(r"<input[^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and name.group(1) in ("dt", "interval", "expression"):
            values[name.group(1)] = value.group(1) if value else ""
    return values


@pytest.mark.django_db
@pytest.mark.parametrize(("lang", "shown"), [("en", "0.0167"), ("ru", "0,0167")])
def test_the_change_form_shows_the_lists_digits_and_an_unchanged_save_keeps_the_row(boss, lang, shown):
    row = Function.objects.create(expression="sin(t)", dt=MINUTE, interval=3650)
    url = reverse("admin:functions_function_change", args=[row.pk])
    page = boss.get(url, headers={"accept-language": lang}).content.decode()
    values = form_values(page)
    assert values["dt"] == shown and values["interval"] == "3650", values

    form = FunctionForm(
        instance=row, data={"preset": "sin(t)", "expression": values["expression"], "dt": shown, "interval": "3650"}
    )
    with translation.override(lang):
        assert not form.has_changed(), form.changed_data
        assert form.fields["dt"].clean(shown) == MINUTE  # the stored 1/60, not 0.0167
        assert form.fields["dt"].clean(" " + shown + " ") == MINUTE
        # The same digits typed anew are what they say.
        assert form.fields["dt"].clean("0.01670") == 0.0167
