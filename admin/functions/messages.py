"""Errors in the reader's language: the one place where an error's code and parameters become words.

datagen answers every error with a stable ``code``, its ``params`` (the numbers and names
the message is made of) and an English ``message``; the pipeline stores a failed run's
code and parameters beside its English text (``Function.error_code``, ``error_params``).
Everything the admin shows of an error goes through here: the add and change forms,
the stored error in the list, the detail page and the live rows (rendered by the
server, the script only places them), the interactive chart's and the CSV's refusals.

A message is :data:`CATALOG`'s gettext template for the code (``code.kind`` for the codes
that come in several forms), filled with the parameters formatted for the reader's
language (numbers by :mod:`django.utils.formats`, words such as a unit or a stage
translated). A code the catalog does not know, or parameters that do not fit its
template, give the English text as it came: nothing is lost, only not translated.
The README's "Error codes" lists the codes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from django.utils import formats
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from functions.numbers import format_number

log = logging.getLogger(__name__)

# code (or "code.kind") -> template. Its placeholders are the code's parameters, formatted by
# :func:`_formatted`; the parameters a template needs are the README's "Error codes".
CATALOG: dict[str, Promise] = {
    # datagen: the expression
    "syntax.unexpected_character": gettext_lazy("unexpected character “%(character)s” at position %(position)s"),
    "syntax.unexpected_token": gettext_lazy("unexpected “%(token)s” at position %(position)s, expected %(expected)s"),
    "syntax.unexpected_end": gettext_lazy(
        "the expression ends too early at position %(position)s, expected %(expected)s"
    ),
    "syntax.empty": gettext_lazy("the expression is empty"),
    "syntax.needs_parentheses": gettext_lazy(
        "function “%(function)s” at position %(position)s needs its arguments in parentheses"
    ),
    "unknown_name": gettext_lazy(
        "unknown name “%(name)s” at position %(position)s; the variable is t and the constants are pi and e"
    ),
    "unknown_function": gettext_lazy("unknown function “%(name)s” at position %(position)s"),
    "wrong_arguments": gettext_lazy("function “%(function)s” at position %(position)s takes %(wanted)s, got %(got)s"),
    "too_long": gettext_lazy("the expression is %(length)s characters long; the limit is %(limit)s"),
    "too_deep": gettext_lazy("the expression is nested too deeply; the limit is %(limit)s levels"),
    "number_out_of_range": gettext_lazy("number %(number)s at position %(position)s is too large for double precision"),
    # datagen: the request's fields
    "required": gettext_lazy("%(field)s is required"),
    "invalid": gettext_lazy("%(field)s must be %(type)s"),
    "not_finite": gettext_lazy("%(field)s must be a finite number"),
    "not_positive": gettext_lazy("%(field)s must be greater than zero"),
    "out_of_range": gettext_lazy("%(field)s must be between %(low)s and %(high)s %(unit)s"),
    "out_of_range.width_too_small": gettext_lazy(
        "interval %(interval)s d at dt %(dt)s h gives %(samples)s samples: the chart must be at least "
        "%(least)s pixels wide"
    ),
    "out_of_range.beyond_double": gettext_lazy("the start of the period is beyond double precision"),
    "too_many_samples.total": gettext_lazy(
        "interval %(interval)s d at dt %(dt)s h gives %(samples)s samples; the limit is %(limit)s"
    ),
    "too_many_samples.raw": gettext_lazy(
        "interval %(interval)s d at dt %(dt)s h gives %(samples)s samples; at most %(limit)s are given "
        "without decimation"
    ),
    # datagen: the request as a whole, and datagen itself
    "not_an_object": gettext_lazy("the request body must be a JSON object"),
    "not_json": gettext_lazy("the request body is not valid JSON"),
    "too_large": gettext_lazy("the request body is larger than %(limit)s bytes"),
    "unsupported_media_type": gettext_lazy("unsupported media type “%(media_type)s”"),
    "method_not_allowed": gettext_lazy("method “%(method)s” is not allowed"),
    "not_acceptable": gettext_lazy("the requested answer format is not available"),
    "math_error": gettext_lazy("math error: %(reason)s"),
    "timeout": gettext_lazy("the series took longer than %(limit_ms)s ms to compute"),
    "busy": gettext_lazy("datagen is busy with other heavy series; try again in %(retry_after)s s"),
    "unavailable": gettext_lazy("datagen's database is unavailable"),
    "not_found": gettext_lazy("no such resource: %(path)s"),
    "internal_error": gettext_lazy("datagen failed; its log has the details"),
    "bad_request": gettext_lazy("the request is malformed"),
    # the pipeline's own (pipeline.errors.CODES)
    "no_answer": gettext_lazy("%(service)s did not answer within %(seconds)s s"),
    "unreachable": gettext_lazy("%(service)s is unreachable"),
    "broken_answer": gettext_lazy("%(service)s broke off its answer"),
    "datagen_http": gettext_lazy("datagen answered HTTP %(status)s"),
    "export_server": gettext_lazy("the export server answered HTTP %(status)s %(exporter_code)s"),
    "export_server_no_png": gettext_lazy("the export server answered without a PNG image"),
    "bad_points": gettext_lazy("point %(index)s of the series is not a finite [x, y] pair"),
    "no_points": gettext_lazy("the series has no points"),
    "no_image": gettext_lazy("the render stage returned no image"),
    "version": gettext_lazy("the message was sent by another release (version %(version)s, expected %(expected)s)"),
    "parked": gettext_lazy(
        "the process running it died %(deaths)s times (limit %(limit)s): the message is parked in the "
        "queue “%(queue)s”, not run again"
    ),
    "lost": gettext_lazy(
        "this refresh was sent %(sends)s times and no stage reported progress for %(seconds)s s after each "
        "send: its work keeps getting lost. The last chart is kept. Run Refresh again."
    ),
    "database_unreachable": gettext_lazy("PostgreSQL is unreachable"),
    "bug": gettext_lazy("unexpected error %(exception)s; the worker's log has the details"),
}

# Words a message is made of (a parameter's value -> its words).
_WORDS: dict[str, dict[str, Promise]] = {
    "field": {
        "expression": gettext_lazy("the expression"),
        "dt": gettext_lazy("dt"),
        "interval": gettext_lazy("interval"),
        "width": gettext_lazy("the width"),
        "end": gettext_lazy("the end of the period"),
        "body": gettext_lazy("the request body"),
    },
    "unit": {
        "days": gettext_lazy("d"),
        "hours": gettext_lazy("h"),
        "pixels": gettext_lazy("pixels"),
        "unix seconds": gettext_lazy("unix seconds"),
    },
    "type": {
        "number": gettext_lazy("a number"),
        "string": gettext_lazy("a string"),
        "integer": gettext_lazy("an integer"),
    },
    "expected": {
        "number": gettext_lazy("a number"),
        "variable": gettext_lazy("t"),
        "constant": gettext_lazy("a constant"),
        "function": gettext_lazy("a function"),
        "open_parenthesis": gettext_lazy("“(”"),
        "close_parenthesis": gettext_lazy("“)”"),
        "comma": gettext_lazy("“,”"),
        "operator": gettext_lazy("an operator"),
        "end": gettext_lazy("the end of the expression"),
    },
    "reason": {
        "division_by_zero": gettext_lazy("division by zero"),
        "log_of_zero": gettext_lazy("logarithm of zero"),
        "log_of_negative": gettext_lazy("logarithm of a negative number"),
        "sqrt_of_negative": gettext_lazy("square root of a negative number"),
        "overflow": gettext_lazy("a value too large for double precision"),
        "underflow": gettext_lazy("a value too small for double precision"),
        "argument_out_of_range": gettext_lazy("an argument outside the function's domain"),
        "zero_to_negative_power": gettext_lazy("zero raised to a negative power"),
        "negative_to_fractional_power": gettext_lazy("a negative number raised to a fractional power"),
    },
    "service": {
        "datagen": gettext_lazy("datagen"),
        "export server": gettext_lazy("the export server"),
    },
    "stage": {
        "points": gettext_lazy("generating points"),
        "render": gettext_lazy("rendering"),
        "persist": gettext_lazy("saving"),
    },
}

# Parameters shown as they are (names the user typed, paths, codes): never translated.
_AS_IS = frozenset({"character", "token", "name", "function", "number", "path", "media_type", "method", "queue"})
_AS_IS |= {"exporter_code", "exception", "version"}


class _Unknown(Exception):
    """The parameters do not fit the template: the English text is shown instead."""


def _number(value: float | int) -> str:
    """A number in the reader's language: whole numbers grouped (``87 600 001``), others as the list
    shows dt and interval (``0,0167``, ``1,16×10⁻¹¹``)."""
    if isinstance(value, int) or (math.isfinite(value) and value == int(value) and abs(value) < 1e15):
        return formats.number_format(int(value), force_grouping=True)
    return format_number(float(value))


def _word(kind: str, value: object, strict: bool = True) -> str:
    """``value``'s words; a value without words is the error (``strict``) or shown as it is."""
    words = _WORDS[kind]
    if not isinstance(value, str) or value not in words:
        if strict:
            raise _Unknown(f"{kind} {value!r}")
        return str(value)
    return str(words[value])


def _alternatives(names: object) -> str:
    if not isinstance(names, list) or not names:
        raise _Unknown(f"expected {names!r}")
    words = [_word("expected", name) for name in names]
    if len(words) == 1:
        return words[0]
    return _("%(some)s or %(last)s") % {"some": ", ".join(words[:-1]), "last": words[-1]}


def _wanted(params: Mapping[str, Any]) -> str:
    low, high = params.get("min"), params.get("max")
    if not isinstance(low, int):
        raise _Unknown(f"min {low!r}")
    if high is None:
        return _("at least %(count)s arguments") % {"count": low}
    if high == low:
        return _("%(count)s arguments") % {"count": low}
    return _("from %(low)s to %(high)s arguments") % {"low": low, "high": high}


def _formatted(params: Mapping[str, Any]) -> dict[str, str]:
    """Every parameter as the reader reads it."""
    out: dict[str, str] = {}
    for name, value in params.items():
        if name == "reason" and value == "other":  # PostgreSQL's words this catalog does not know yet
            out[name] = str(params.get("detail", ""))
        elif name in _WORDS and name != "expected":
            out[name] = _word(name, value, strict=name in ("reason", "stage"))
        elif name == "expected":
            out[name] = _alternatives(value)
        elif name in _AS_IS or isinstance(value, str | bool) or value is None:
            out[name] = str(value)
        elif isinstance(value, int | float):
            out[name] = _number(value)
        else:
            out[name] = str(value)
    if "min" in params:
        out["wanted"] = _wanted(params)
    return out


def key(code: str, params: Mapping[str, Any]) -> str:
    """The catalog key of an error: ``code``, or ``code.kind`` for a code with several forms."""
    kind = params.get("kind")
    return f"{code}.{kind}" if kind else code


def render(code: str, params: Mapping[str, Any] | None, fallback: str) -> str:
    """The error ``code`` with ``params`` in the current language; ``fallback`` (the English
    text as it came) for an unknown code or parameters that do not fit."""
    params = params if isinstance(params, Mapping) else {}
    template = CATALOG.get(key(code, params)) if code else None
    if template is None:
        return fallback
    try:
        return str(template) % _formatted(params)
    except (_Unknown, KeyError, TypeError, ValueError) as exc:
        log.info("error %s: shown in English (%s)", code, exc)
        return fallback


def datagen_problem(problem: Mapping[str, Any], field: str = "") -> str:
    """One of datagen's errors (``code``, ``params``, ``message``) in the current language."""
    params = dict(problem.get("params") or {})
    params.setdefault("field", field or problem.get("field") or "")
    if not params["field"]:
        del params["field"]
    return render(str(problem.get("code") or ""), params, str(problem.get("message") or ""))


def failure(code: str, params: Mapping[str, Any] | None, fallback: str) -> str:
    """A failure as the pipeline records it: the stage it happened in, what happened, and how long
    the retries went on (``params``: ``stage``, ``attempts``, ``retried_for`` beside the code's own)."""
    params = dict(params or {})
    stage, attempts, seconds = params.pop("stage", None), params.pop("attempts", None), params.pop("retried_for", 0)
    message = render(code, params, "")
    if not message:
        return fallback
    if attempts is not None:
        message = _("%(message)s (gave up after %(attempts)s attempts in %(seconds)s s)") % {
            "message": message,
            "attempts": _number(attempts),
            "seconds": _number(seconds or 0),
        }
    if stage is not None:
        try:
            message = _("Stage “%(stage)s” failed: %(message)s") % {"stage": _word("stage", stage), "message": message}
        except _Unknown:
            return fallback
    return message


def stored_error(code: str, params: Mapping[str, Any] | None, text: str) -> str:
    """A row's stored error: from its code in the reader's language, or its stored text
    (an old row, stored before codes were, or a code this admin does not know)."""
    if not code:
        return text
    return failure(code, params, text)
