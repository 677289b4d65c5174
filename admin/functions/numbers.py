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


def parse_number(text: str) -> float:
    """What people type: ``0,5`` or ``.5`` or ``1 000,5`` or ``1e-3``. Raises ValueError."""
    cleaned = text.strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "").replace("_", "")
    if cleaned.count(",") == 1 and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    value = float(cleaned)  # accepts ".5", "5." and "1e-3"; refuses "1,5,6" and ""
    if not math.isfinite(value):  # "nan", "inf"
        raise ValueError(text)
    return value


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
