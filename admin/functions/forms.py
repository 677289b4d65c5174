from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.validators import MaxLengthValidator
from django.utils.translation import gettext_lazy as _

from functions import messages
from functions.models import Function
from functions.numbers import NumberError, format_input, parse_number, sampling_problems
from pipeline import api

PRESETS = ["t + 2/t", "sin(t)"]
CUSTOM = "__custom__"


class NumberField(forms.FloatField):
    """A number as people write it in the reader's language (:func:`functions.numbers.parse_number`).

    English ``1,000.5``; Russian ``1 000,5``; ``.5`` and ``1e-3`` everywhere; an ambiguous entry
    (``1,000``) is refused, saying how it was read. A text input (``inputmode="decimal"``): a
    browser's number input refuses the decimal comma in some locales and shows nothing for what
    it refuses.

    A row's value is shown as the list shows it (``0,0167`` for 1/60 hours in Russian); ``stored``
    holds the row's own value, which that very text stands for: a form saved with the text left as
    shown keeps the stored number (no drift from display rounding) and counts as unchanged.
    """

    widget = forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "size": 22})
    stored: float | None = None

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        text = str(value)
        if self.stored is not None and text.strip() == format_input(self.stored):
            return self.stored
        try:
            return parse_number(text)
        except NumberError as exc:  # the message names the field: it may be read away from the box
            raise forms.ValidationError(
                _("%(field)s: %(problem)s"), code="invalid", params={"field": self.label, "problem": str(exc)}
            ) from None

    def prepare_value(self, value):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return format_input(float(value))
        return value


# The units of a schedule ("off", or every N minutes / hours / days), in seconds.
SCHEDULE_UNITS = [("", _("off")), ("60", _("minutes")), ("3600", _("hours")), ("86400", _("days"))]
MAX_SCHEDULE_SECONDS = 366 * 86400


class ScheduleWidget(forms.MultiWidget):
    """A number and a unit, side by side: ``[5] [minutes]``; the unit "off" turns the schedule off."""

    def __init__(self, attrs: dict | None = None) -> None:
        number = forms.NumberInput(attrs={"min": 1, "step": 1, "class": "vIntegerField fd-period-number"})
        super().__init__([number, forms.Select(choices=SCHEDULE_UNITS)], attrs)

    def decompress(self, value: int | None) -> list:
        if not value:
            return [None, ""]
        for size in (86400, 3600, 60):
            if value % size == 0:
                return [value // size, str(size)]
        return [max(1, round(value / 60)), "60"]


class ScheduleField(forms.MultiValueField):
    """A refresh schedule in seconds (None: off); at least one minute, at most a year."""

    widget = ScheduleWidget

    def __init__(self, **kwargs) -> None:
        fields = (
            forms.IntegerField(min_value=1, max_value=MAX_SCHEDULE_SECONDS // 60),
            forms.ChoiceField(choices=SCHEDULE_UNITS, required=False),
        )
        kwargs.setdefault("label", _("Refresh every"))
        kwargs.setdefault("help_text", _("The chart refreshes itself on this schedule; at least 1 minute. Off: never."))
        super().__init__(fields, require_all_fields=False, required=False, **kwargs)

    def compress(self, data_list: list) -> int | None:
        number, unit = (list(data_list) + [None, None])[:2]
        if not unit:
            return None  # off, whatever the number says
        if number in (None, ""):
            raise forms.ValidationError(
                _("Type how many %(unit)s, or choose “off”.") % {"unit": dict(SCHEDULE_UNITS)[unit]}
            )
        seconds = int(number) * int(unit)
        if seconds > MAX_SCHEDULE_SECONDS:
            raise forms.ValidationError(_("At most once a year (366 days)."))
        return seconds


class ScheduleForm(forms.Form):
    """The "Refresh every…" action's page: one schedule for every selected row."""

    refresh_every = ScheduleField()


class FunctionForm(forms.ModelForm):
    """Pick a preset function or type one; datagen checks it before anything is saved."""

    preset = forms.ChoiceField(
        label=_("Function"),
        choices=[(p, f"y = {p}") for p in PRESETS] + [(CUSTOM, _("Custom expression…"))],
        initial=PRESETS[0],
    )
    expression = forms.CharField(
        label=_("Custom expression"),
        required=False,
        max_length=500,
        help_text=_(
            "Used when “Custom expression” is chosen. t is unix time in seconds; "
            "e.g. t*t + 2/t, sqrt(t) * sin(t / 3600), 2^(-t/1e9)."
        ),
        widget=forms.TextInput(attrs={"size": 60, "placeholder": "t*t + 2/t"}),
    )

    refresh_every = ScheduleField()

    class Meta:
        model = Function
        fields = ["preset", "expression", "dt", "interval", "refresh_every"]
        labels = {"dt": _("dt, hours"), "interval": _("interval, days")}
        field_classes = {"dt": NumberField, "interval": NumberField}
        help_texts = {
            "dt": _("Sampling step in hours, e.g. 1, 0.5 (or .5), 0.0167 for one minute, 1e-3."),
            "interval": _("Depth of the modelling period in days, ending at the processing date (3650 = 10 years)."),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.instance.expression if self.instance.pk else ""
        if current:
            self.initial["preset"] = current if current in PRESETS else CUSTOM
            if current in PRESETS:
                self.initial["expression"] = ""
        # A view-only user's form has no editable fields at all (the admin excludes them).
        for name in ("dt", "interval"):
            if name in self.fields:
                self.fields[name].initial = 1
                if self.instance.pk:  # the text shown stands for the stored number
                    self.fields[name].stored = getattr(self.instance, name)

    def clean(self):
        cleaned = super().clean()
        preset = cleaned.get("preset")
        text = (cleaned.get("expression") or "").strip()
        if preset == CUSTOM and not text:
            self.add_error("expression", _("Type an expression, or choose a preset."))
            return cleaned
        expression = text if preset == CUSTOM else preset
        cleaned["expression"] = expression
        dt, interval = cleaned.get("dt"), cleaned.get("interval")
        if not expression or dt is None or interval is None:
            return cleaned  # Django already named the field that is missing or not a number
        bounds = sampling_problems(dt, interval)
        if bounds:  # 1e-320, 1e300: refused here, before asking datagen
            for field, message in bounds.items():
                self.add_error(field, message)
            return cleaned
        # datagen checks the expression and the sample limits, as it will when drawing.
        try:
            problems = api.check_function(expression, interval, dt)
        except api.TransientFailure as exc:
            reason = messages.failure(exc.cause, exc.params, str(exc))
            raise forms.ValidationError(
                _("The function could not be checked, try again: %(reason)s") % {"reason": reason}
            ) from exc
        for field, found in problems.items():
            words = "; ".join(messages.datagen_problem(problem, field) for problem in found)
            field = field if field in ("dt", "interval") else "expression"
            if field == "expression" and preset != CUSTOM:
                field = None  # a preset has no text field of its own: a form-wide error
            self.add_error(field, words)
        return cleaned


class LoginForm(AdminAuthenticationForm):
    """The admin's login form, with the user name's length checked before anyone authenticates.

    Django's form only sets ``maxlength`` on the input; a longer name reached the login
    throttle (django-axes), whose 255-character column made it a 500. Now it is a form error.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["username"]
        field.validators.append(MaxLengthValidator(field.max_length or 150))
