"""Numbers for people: dt and interval as the admin shows them, in the current language.

``0.016666666666666666`` hours reads ``0.0167 h (1 min)`` in English and
``0,0167 ч (1 мин)`` in Russian. A number the user typed with a few digits is
shown as typed (``1.25`` stays ``1.25``); a long fraction is cut to three
significant digits. Very large and very small numbers use scientific notation
(``1.5×10⁷``), never a float's repr.

Typed numbers are read in the reader's notation with Babel (strict): ``1,000.5`` in
English, ``1 000,5`` in Russian, ``.5`` and ``1e-3`` in both; what English and Russian
notation read as different numbers (``1,000``) is refused with both readings
(:func:`parse_number`). A form shows a stored number with the list's digits
(:func:`format_input`), typeable back.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from babel import Locale
from babel.numbers import NumberFormatError, format_decimal, get_decimal_symbol, get_group_symbol, parse_decimal
from django.conf import settings
from django.utils import formats, translation
from django.utils.translation import gettext as _
from django.utils.translation import to_locale

from pipeline import api


def _unit_symbol(symbol: str) -> str:
    return {
        "yr": _("yr"),
        "d": _("d"),
        "h": _("h"),
        "min": _("min"),
        "s": _("s"),
    }[symbol]


def format_number(value: float, digits: int = 3) -> str:
    """A number for people in the current language (the chart's rule, with the language's decimal separator)."""
    return api.format_number(value, digits).replace(".", formats.get_format("DECIMAL_SEPARATOR"))


def duration_parts(value: float, unit: str) -> tuple[str, str | None]:
    """``value`` in ``unit`` ("h" or "d"), and the same in a more readable unit when that helps.

    ``duration_parts(1/60, "h")`` → ``("0.0167 h", "1 min")``; ``duration_parts(1, "d")`` → ``("1 d", None)``.
    """
    number, symbol = api.readable_duration(value * (3600.0 if unit == "h" else 86400.0))
    text = f"{format_number(value)} {_unit_symbol(unit)}"
    if symbol == unit:
        return text, None
    return text, f"{number.replace('.', formats.get_format('DECIMAL_SEPARATOR'))} {_unit_symbol(symbol)}"


def format_duration(value: float, unit: str) -> str:
    """``0.0167 h (1 min)``; ``1 d``."""
    text, human = duration_parts(value, unit)
    return f"{text} ({human})" if human else text


class NumberError(ValueError):
    """A typed number refused; ``str(exc)`` says why in the reader's language (how it was read, how to write it)."""


# Longer is no number a person types (and 10,000 digits must not reach Decimal/float): said, not parsed.
MAX_NUMBER_LENGTH = 40
# The grouping spaces people type: space, no-break space (U+00A0), narrow no-break space (U+202F), thin space.
_SPACES = " \u00a0\u202f\u2009"
_SPACES_RE = re.compile(f"[{_SPACES}]")
# Digits, separators, a sign and an exponent: nothing else (no "nan", "inf", "1_000", non-ASCII digits).
_NUMBER_CHARS = re.compile(f"[+-]?(?=[0-9.,{_SPACES}]*[0-9])[0-9.,{_SPACES}]+(?:[eE][+-]?[0-9]+)?")
_SUPERSCRIPT_DIGITS = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")


def _notation(language: str) -> str:
    return {"en": _("in English notation"), "ru": _("in Russian notation")}.get(language, language)


def _locale(language: str | None = None) -> Locale:
    return Locale.parse(to_locale(language or translation.get_language() or settings.LANGUAGE_CODE))


def _languages() -> list[str]:
    """The notations a typed number is read in: the admin's languages (English and Russian)."""
    return [code for code, _name in settings.LANGUAGES]


def _read(text: str, language: str) -> Decimal | None:
    """``text`` read strictly in ``language``'s notation (Babel), or None when it is no number there.

    Any grouping space (U+0020, U+00A0, U+202F, U+2009) stands for the language's group mark.
    """
    locale = _locale(language)
    normalized = _SPACES_RE.sub(get_group_symbol(locale), text)
    try:
        return parse_decimal(normalized, locale=locale, strict=True)
    except NumberFormatError:
        return None


def _plain(value: Decimal, decimal_mark: str = ".") -> str:
    """``value`` without grouping: ``1000``, ``0.0167``; an exponent when the digits would be many."""
    text = format(value.normalize(), "f")
    if len(text) > 24:
        text = str(value.normalize()).replace("E", "e").replace("e+", "e")
    return text.replace(".", decimal_mark)


def _spelling(value: Decimal, language: str) -> str:
    """How to write ``value`` so that every notation reads it the same: ``1,25`` in Russian, else ``1.125``."""
    mark = get_decimal_symbol(_locale(language))
    native = _plain(value, mark)
    mine = _read(native, language)
    others = {_read(native, other) for other in _languages() if other != language}
    return native if mine == value and others <= {None, value} else _plain(value)


def parse_number(text: str, language: str | None = None) -> float:
    """A number typed in the reader's notation (``language``, default: the current one).

    English: ``1,000.5``, ``1000.5``; Russian: ``1 000,5`` (any space), ``1000,5``; everywhere ``.5``,
    ``1e-3``. Refused with :class:`NumberError`, saying how it was read: an entry that is no number in
    the reader's notation (``1,5`` in English), and an *ambiguous* one, which the admin's two notations
    read as different numbers (``1,000``: 1000 in English, 1 in Russian).
    """
    language = (language or translation.get_language() or settings.LANGUAGE_CODE).split("-")[0]
    raw = text.strip()
    if not raw:
        raise NumberError(_("Type a number."))
    if len(raw) > MAX_NUMBER_LENGTH:
        raise NumberError(
            _("%(count)s characters is too long for a number (at most %(max)s).")
            % {"count": len(raw), "max": MAX_NUMBER_LENGTH}
        )
    locale = _locale(language)
    example = format_decimal(Decimal("1000.5"), locale=locale, group_separator=True)
    if not _NUMBER_CHARS.fullmatch(raw):
        raise NumberError(
            _("“%(text)s” is not a number; write it like %(example)s or 1e-3.") % {"text": raw, "example": example}
        )
    mine = _read(raw, language)
    others = {other: _read(raw, other) for other in _languages() if other != language}
    if mine is None:  # what another notation reads, written the reader's way
        choices = list(dict.fromkeys(_spelling(value, language) for value in others.values() if value is not None))
        if choices:
            raise NumberError(
                _("“%(text)s” is not a number written like %(example)s: did you mean %(choices)s?")
                % {"text": raw, "example": example, "choices": str(_(" or ")).join(choices)}
            )
        raise NumberError(_("“%(text)s” is not a number written like %(example)s.") % {"text": raw, "example": example})
    for other, value in others.items():
        if value is not None and value != mine:
            raise NumberError(
                _(
                    "“%(text)s” is ambiguous: read as %(mine)s %(notation)s, as %(other)s %(other_notation)s. "
                    "Type %(mine)s or %(other)s."
                )
                % {
                    "text": raw,
                    "mine": _spelling(mine, language),
                    "notation": _notation(language),
                    "other": _spelling(value, language),
                    "other_notation": _notation(other),
                }
            )
    number = float(mine)
    if not math.isfinite(number):
        raise NumberError(_("“%(text)s” is too large for a number.") % {"text": raw})
    if number == 0 and mine != 0:
        raise NumberError(_("“%(text)s” is too close to zero for a number.") % {"text": raw})
    return number


def format_input(value: float) -> str:
    """``value`` as a form's text box shows it: the list's digits (``0,0167`` for 1/60 in Russian), typeable.

    ``2.5×10⁷`` in the list is ``2.5e7`` here; no grouping (``1000``, never ``1,000``, which is ambiguous).
    """
    text = api.format_number(value)
    if "×10" in text:
        mantissa, exponent = text.split("×10")
        text = f"{mantissa}e{exponent.translate(_SUPERSCRIPT_DIGITS)}"
    return text.replace(".", get_decimal_symbol(_locale()))


# Numbers that make sense (issue 19; datagen refuses the same, datagen/series/serializers.py):
# a step from a millisecond to a century, a window from a microsecond to a century.
DT_RANGE_HOURS = (1 / 3_600_000, 36_525 * 24.0)
INTERVAL_RANGE_DAYS = (1 / 86_400_000_000, 36_525.0)


def sampling_problems(dt: float, interval: float) -> dict[str, str]:
    """``{"dt": message, "interval": message}`` for the values outside the sane bounds (empty: fine)."""
    problems = {}
    if not (math.isfinite(dt) and DT_RANGE_HOURS[0] <= dt <= DT_RANGE_HOURS[1]):
        problems["dt"] = _("dt must be between 1 ms (%(low)s h) and 100 years (%(high)s h).") % {
            "low": "1/3600000",
            "high": "876600",
        }
    if not (math.isfinite(interval) and INTERVAL_RANGE_DAYS[0] <= interval <= INTERVAL_RANGE_DAYS[1]):
        problems["interval"] = _("interval must be between 1 µs (%(low)s d) and 100 years (%(high)s d).") % {
            "low": "1/86400000000",
            "high": "36525",
        }
    return problems


def format_period(seconds: float) -> str:
    """A schedule's period in its largest whole unit: ``5 min``, ``2 h``, ``1 d`` (``90 min``, not ``1.5 h``)."""
    whole = round(seconds)
    for size, symbol in ((86400, "d"), (3600, "h"), (60, "min")):
        if whole >= size and whole % size == 0:
            return f"{whole // size} {_unit_symbol(symbol)}"
    return f"{whole} {_unit_symbol('s')}"


def format_lag(seconds: float) -> str:
    """How late, to the two largest units: ``40 s``, ``3 min``, ``2 h 5 min``, ``1 d 3 h``."""
    whole = max(0, int(seconds))
    parts = []
    for size, symbol in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if whole >= size or (not parts and size == 1):
            parts.append(f"{whole // size} {_unit_symbol(symbol)}")
            whole %= size
        if len(parts) == 2 or (parts and symbol == "min"):
            break
    return " ".join(parts)
