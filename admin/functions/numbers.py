"""Numbers for people: dt and interval as the admin shows them, in the current language.

``0.016666666666666666`` hours reads ``0.0167 h (1 min)`` in English and
``0,0167 ч (1 мин)`` in Russian. A number the user typed with a few digits is
shown as typed (``1.25`` stays ``1.25``); a long fraction is cut to three
significant digits. Very large and very small numbers use scientific notation
(``1.5×10⁷``), never a float's repr.
"""

from __future__ import annotations

import math

from django.utils import formats
from django.utils.translation import gettext as _

SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")

# A human unit for a duration, largest first: (seconds per unit, symbol).
UNITS = [
    (365 * 86400.0, "yr"),
    (86400.0, "d"),
    (3600.0, "h"),
    (60.0, "min"),
    (1.0, "s"),
]


def _unit_symbol(symbol: str) -> str:
    return {
        "yr": _("yr"),
        "d": _("d"),
        "h": _("h"),
        "min": _("min"),
        "s": _("s"),
    }[symbol]


def significant(value: float, digits: int = 3) -> str:
    """``value`` as short plain text with a decimal point (``0.0167``, ``1.25``, ``1.5e+07``).

    Up to six significant digits when that is exact (what a person typed),
    otherwise ``digits`` significant digits.
    """
    for text in (f"{value:.6g}", f"{value:.{digits}g}"):
        if float(text) == value:
            return text
    return text


def format_number(value: float, digits: int = 3, decimal_separator: str | None = None) -> str:
    """A number for people in the current language: decimal comma in Russian, ×10ⁿ when huge or tiny."""
    if not math.isfinite(value):
        return str(value)
    sep = decimal_separator if decimal_separator is not None else formats.get_format("DECIMAL_SEPARATOR")
    text = significant(value, digits)
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}×10{str(int(exponent)).translate(SUPERSCRIPT)}"
    elif value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-4):
        exponent = math.floor(math.log10(abs(value)))
        mantissa = significant(value / 10**exponent, digits)
        text = f"{mantissa}×10{str(exponent).translate(SUPERSCRIPT)}"
    return text.replace(".", sep)


def human_duration(seconds: float, digits: int = 3) -> tuple[str, str]:
    """The duration in its most readable unit: (number text, unit symbol)."""
    for size, symbol in UNITS:
        if abs(seconds) >= size or symbol == "s":
            return format_number(seconds / size, digits), _unit_symbol(symbol)
    raise AssertionError("unreachable")


def duration_parts(value: float, unit: str) -> tuple[str, str | None]:
    """``value`` in ``unit`` ("h" or "d"), and the same in a more readable unit when that helps.

    ``duration_parts(1/60, "h")`` → ``("0.0167 h", "1 min")``; ``duration_parts(1, "d")`` → ``("1 d", None)``.
    """
    seconds = value * (3600.0 if unit == "h" else 86400.0)
    text = f"{format_number(value)} {_unit_symbol(unit)}"
    number, symbol = human_duration(seconds)
    return text, None if symbol == _unit_symbol(unit) else f"{number} {symbol}"


def format_duration(value: float, unit: str) -> str:
    """``0.0167 h (1 min)``; ``1 d``."""
    text, human = duration_parts(value, unit)
    return f"{text} ({human})" if human else text


def parse_number(text: str) -> float:
    """What people type: ``0,5`` or ``.5`` or ``1 000,5`` or ``1e-3``. Raises ValueError."""
    cleaned = text.strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "").replace("_", "")
    if cleaned.count(",") == 1 and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    value = float(cleaned)  # accepts ".5", "5." and "1e-3"; refuses "1,5,6" and ""
    if not math.isfinite(value):  # "nan", "inf"
        raise ValueError(text)
    return value
