from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class Function(models.Model):
    """A function y = f(t) with its sampling parameters and its latest chart or error."""

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    expression = models.CharField(_("function"), max_length=500)
    # What makes a drawable series (positive, not too many samples) is datagen's
    # rule; the add form asks datagen, and the database refuses what is not positive.
    dt = models.FloatField(_("dt, hours"), help_text=_("Sampling step in hours."))
    interval = models.FloatField(
        _("interval, days"),
        help_text=_("Depth of the modelling period in days, ending at the processing date."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    # The run that must win: set when a refresh is queued; only its result is stored.
    run_id = models.UUIDField(_("latest run"), null=True, blank=True, editable=False)
    queued_at = models.DateTimeField(_("queued at"), null=True, blank=True, editable=False)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.QUEUED, editable=False)

    # The stored outcome of the run ``result_run``: a PNG chart or an error text.
    result_run = models.UUIDField(_("stored run"), null=True, blank=True, editable=False)
    chart = models.BinaryField(_("chart"), null=True, blank=True, editable=False)
    error = models.TextField(_("error"), blank=True, editable=False)
    processed_at = models.DateTimeField(_("processing date"), null=True, blank=True, editable=False)
    trace = models.JSONField(_("stage trace"), default=dict, blank=True, editable=False)

    class Meta:
        # Django's admin puts the model name in sentences ("Add function"):
        # Russian needs the accusative there, hence a context of its own.
        verbose_name = pgettext_lazy("model name in admin sentences", "function")
        verbose_name_plural = _("functions")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "queued_at"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(dt__gt=0), name="function_dt_positive"),
            models.CheckConstraint(condition=models.Q(interval__gt=0), name="function_interval_positive"),
        ]

    def __str__(self) -> str:
        return f"y = {self.expression}"

    @property
    def in_progress(self) -> bool:
        return self.state == self.State.QUEUED
