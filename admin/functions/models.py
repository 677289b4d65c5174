import uuid

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

# The channel PostgreSQL announces a row's stored outcome on (its id as the payload), at
# the commit that stores it: services store and announce, selectors.wait_for_outcome listens.
OUTCOME_CHANNEL = "function_outcome"


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

    # The run that must win (a :class:`Run` of this row): set, with ``state`` queued, in
    # the transaction that queues the run; only that run's outcome lands on the row.
    run_id = models.UUIDField(_("latest run"), null=True, blank=True, editable=False)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.QUEUED, editable=False)

    # The stored outcome of the run ``result_run``: a chart, or an error text. A failed
    # run keeps the last chart drawn (shown on the detail page beside the error).
    result_run = models.UUIDField(_("stored run"), null=True, blank=True, editable=False)
    chart = models.BinaryField(_("chart"), null=True, blank=True, editable=False)
    error = models.TextField(_("error"), blank=True, editable=False)
    # The error as data (issue 23): its stable code and parameters, which the admin words in the
    # reader's language (functions.messages); ``error`` keeps the English text, and is what an
    # old row (no code) or an unknown code shows.
    # Database defaults too: rows written by plain SQL (tests, tools) need not name them.
    error_code = models.CharField(_("error code"), max_length=40, blank=True, default="", db_default="", editable=False)
    error_params = models.JSONField(_("error parameters"), default=dict, db_default={}, blank=True, editable=False)
    processed_at = models.DateTimeField(_("processing date"), null=True, blank=True, editable=False)
    trace = models.JSONField(_("stage trace"), default=dict, blank=True, editable=False)

    # The schedule (off when empty): the dispatcher (services.dispatch_due_schedules, on
    # beat) queues a refresh of the row at ``next_refresh_at`` and moves it on by whole
    # periods from where it was (no drift; missed ticks coalesce into one refresh).
    # At least a minute (checked in Python: a check constraint here would make every form
    # validation ask PostgreSQL; services.set_schedule refuses less too).
    refresh_every = models.PositiveIntegerField(
        _("refresh every, seconds"),
        null=True,
        blank=True,
        validators=[MinValueValidator(60)],
        help_text=_("Off when empty; at least one minute."),
    )
    next_refresh_at = models.DateTimeField(_("next refresh"), null=True, blank=True, editable=False)

    class Meta:
        # Django's admin puts the model name in sentences ("Add function"):
        # Russian needs the accusative there, hence a context of its own.
        verbose_name = pgettext_lazy("model name in admin sentences", "function")
        verbose_name_plural = _("functions")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["state"], name="function_state"),
            # The dispatcher's query: the due rows among the scheduled ones only.
            models.Index(
                fields=["next_refresh_at"],
                name="function_next_refresh",
                condition=models.Q(next_refresh_at__isnull=False),
            ),
        ]
        constraints = [
            # A schedule always has its next time, and no schedule has none.
            models.CheckConstraint(
                condition=models.Q(refresh_every__isnull=True, next_refresh_at__isnull=True)
                | models.Q(refresh_every__isnull=False, next_refresh_at__isnull=False),
                name="function_schedule_has_next_time",
            ),
            models.CheckConstraint(condition=models.Q(dt__gt=0), name="function_dt_positive"),
            models.CheckConstraint(condition=models.Q(interval__gt=0), name="function_interval_positive"),
        ]

    def __str__(self) -> str:
        return f"y = {self.expression}"

    @property
    def in_progress(self) -> bool:
        return self.state == self.State.QUEUED


class Batch(models.Model):
    """The runs one Refresh queued together; its progress is an aggregate of their states."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    started_at = models.DateTimeField(_("started"), db_default=Now(), db_index=True)

    def __str__(self) -> str:
        return f"batch {self.id}"


class Run(models.Model):
    """One pass of a function through the chain, and its outcome. PostgreSQL decides it:

    ``queued`` → ``done`` | ``failed`` (persist, or the sweep) | ``superseded`` (a newer
    run of the row was queued). Only a queued run moves, and only forward: a duplicate
    of a finished run changes nothing. At most one run per row is queued (a constraint),
    and it is the row's ``run_id``. ``sent_at`` is the outbox: empty until the broker
    confirmed the run's first message; the sweep sends what stays unsent.
    """

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        SUPERSEDED = "superseded", _("Superseded")

    id = models.UUIDField(primary_key=True, editable=False)
    function = models.ForeignKey(Function, on_delete=models.CASCADE, related_name="runs")
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.CASCADE, related_name="runs")
    # What the run draws: the row's values when the run was queued, under the row's lock.
    expression = models.CharField(max_length=500)
    dt = models.FloatField()
    interval = models.FloatField()
    queued_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    sends = models.PositiveSmallIntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["batch", "state"], name="run_batch_state"),
            models.Index(fields=["queued_at"], name="run_queued", condition=models.Q(state="queued")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["function"], condition=models.Q(state="queued"), name="run_one_queued_per_function"
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.id} of row {self.function_id} ({self.state})"
