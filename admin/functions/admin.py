"""The Django admin of functions: list with charts, add form, the Refresh action.

The chart image, live rows, points and CSV views are in ``functions/views.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.db import transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import path, reverse
from django.utils import dateformat, formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext_lazy as _

from functions import messages as messages_words
from functions import selectors, series, services, views
from functions.forms import FunctionForm, LoginForm, ScheduleForm
from functions.models import Function
from functions.numbers import duration_parts, format_duration, format_lag, format_period
from pipeline import api

# A scheduled row is "behind" once its refresh is this late (two ticks of the dispatcher).
BEHIND_AFTER = timedelta(seconds=2 * api.SCHEDULE_EVERY)


def format_processing_date(value: datetime) -> str:
    """A processing date as the admin shows it: to the second, in the current time zone."""
    return dateformat.format(timezone.localtime(value), "Y-m-d H:i:s T")


def _duration_html(value: float, unit: str) -> str:
    """A duration for the list: each part kept on one line, the line breaking between them."""
    text, human = duration_parts(value, unit)
    if human is None:
        return format_html('<span class="fd-nowrap">{}</span>', text)
    return format_html('<span class="fd-nowrap">{}</span> <span class="fd-nowrap">({})</span>', text, human)


STAGE_LABELS = {
    selectors.UNSENT: _("waiting for the broker"),
    api.QUEUED: _("queued"),
    api.POINTS: _("generating points"),
    api.RENDERING: _("rendering"),
    api.PERSISTING: _("saving"),
}


admin.site.site_header = _("Function Dashboard")
admin.site.site_title = _("Function Dashboard")
admin.site.index_title = _("Functions and their charts")
admin.site.enable_nav_sidebar = False
admin.site.login_form = LoginForm


@admin.action(description=_("Refresh"), permissions=["change"])
def refresh(modeladmin: FunctionAdmin, request: HttpRequest, queryset) -> None:
    count = services.refresh_functions(queryset)
    modeladmin.message_user(
        request,
        ngettext(
            "%(count)d function queued for refresh. Its row updates itself.",
            "%(count)d functions queued for refresh. Their rows update themselves.",
            count,
        )
        % {"count": count},
        messages.SUCCESS,
    )


# The query-string lookups of the list's filters (list_filter ["state"]: Django's choices filter).
LIST_LOOKUPS = frozenset({"state", "state__exact", "state__isnull"})


@admin.action(description=_("Refresh every…"), permissions=["change"])
def refresh_every(modeladmin: FunctionAdmin, request: HttpRequest, queryset) -> TemplateResponse | None:
    """An intermediate page (as Django's delete confirmation): the period for the selected rows, or off."""
    form = ScheduleForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        every = form.cleaned_data["refresh_every"]
        count = services.set_schedule([row.pk for row in queryset.only("pk")], every)
        if every:
            text = ngettext(
                "%(count)d function now refreshes every %(period)s.",
                "%(count)d functions now refresh every %(period)s.",
                count,
            ) % {"count": count, "period": format_period(every)}
        else:
            text = ngettext(
                "%(count)d function no longer refreshes on a schedule.",
                "%(count)d functions no longer refresh on a schedule.",
                count,
            ) % {"count": count}
        modeladmin.message_user(request, text, messages.SUCCESS)
        return None  # back to the list
    rows = list(queryset.order_by("pk")[:21])
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": _("Refresh every…"),
        "form": form,
        "rows": rows[:20],
        "more": max(0, queryset.count() - 20) if len(rows) > 20 else 0,
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "opts": modeladmin.model._meta,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, "admin/functions/function/refresh_every.html", context)


@admin.register(Function)
class FunctionAdmin(admin.ModelAdmin):
    form = FunctionForm
    list_display = ["function", "chart_or_error", "dt_human", "interval_human", "processing_date", "status", "schedule"]
    list_display_links = ["function"]
    list_filter = ["state"]
    search_fields = ["expression"]
    sortable_by = ["function", "dt_human", "interval_human", "processing_date"]
    ordering = ["-created_at", "-id"]
    list_per_page = 20
    actions = [refresh, refresh_every]
    fieldsets = [(None, {"fields": ["preset", "expression", "dt", "interval", "refresh_every"]})]
    readonly_fields = [
        "full_chart",
        "error_text",
        "processing_date",
        "status",
        "stage_trace",
        "run_history",
        "sampling",
        "explore",
    ]
    # What a row in flight changes: the list's display methods that live-rows.json
    # (views.live_rows_view) renders, so the polled cells are the list's own.
    live_columns = ["chart_or_error", "processing_date", "status", "schedule"]

    # The list -----------------------------------------------------------------

    def get_queryset(self, request):
        # The list never loads the PNGs; the <img> tags fetch them from views.chart_view.
        return selectors.with_queued_since(super().get_queryset(request).defer("chart", "trace"))

    def get_changelist(self, request, **kwargs):
        return LiveChangeList

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        """Only the lookups the list offers (its state filter); anything else is a 400.

        Django would accept any lookup on the model's own fields from the query string
        (``?expression__regex=(`` answered 500, a crafted pattern kept PostgreSQL busy).
        The search (``q``), ordering (``o``), paging (``p``) and the admin's own
        parameters never reach this hook.
        """
        return lookup in LIST_LOOKUPS

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "batches": selectors.recent_batches()}
        return super().changelist_view(request, extra_context)

    @admin.display(description=_("function"), ordering="expression")
    def function(self, obj: Function) -> str:
        return f"y = {obj.expression}"

    def _chart_img(self, obj: Function, css_class: str) -> str:
        url = reverse("admin:functions_function_chart", args=[obj.pk])
        return format_html('<img class="{}" src="{}?v={}" alt="{}">', css_class, url, obj.result_run, obj)

    @admin.display(description=_("chart"))
    def chart_or_error(self, obj: Function) -> str:
        if obj.error:
            return format_html('<pre class="fd-error">{}</pre>', self.error_words(obj))
        if obj.result_run:
            return self._chart_img(obj, "fd-thumb")
        return format_html('<span class="fd-pending">{}</span>', _("not rendered yet"))

    @admin.display(description=_("dt, hours"), ordering="dt")
    def dt_human(self, obj: Function) -> str:
        return _duration_html(obj.dt, "h")

    @admin.display(description=_("interval, days"), ordering="interval")
    def interval_human(self, obj: Function) -> str:
        return _duration_html(obj.interval, "d")

    @admin.display(description=_("processing date"), ordering="processed_at", empty_value="—")
    def processing_date(self, obj: Function) -> str | None:
        # To the second: a refresh within the same minute must show a new date.
        if not obj.processed_at:
            return None
        date, time = format_processing_date(obj.processed_at).split(" ", 1)
        return format_html('<span class="fd-date">{}</span> <span class="fd-time">{}</span>', date, time)

    @admin.display(description=_("status"), ordering="state")
    def status(self, obj: Function) -> str:
        if not obj.in_progress:
            return obj.get_state_display()
        stage = getattr(obj, "live_stage", "queued")
        return format_html('<span class="fd-running">{}…</span>', STAGE_LABELS.get(stage, stage))

    @admin.display(description=_("schedule"), ordering="next_refresh_at", empty_value="—")
    def schedule(self, obj: Function) -> str | None:
        """The period and the next refresh; "behind by …" when the schedule is late (the dispatcher
        has not reached the row, or its scheduled run waits in the pipeline), by how much."""
        if not obj.refresh_every or obj.next_refresh_at is None:
            return None
        now = timezone.now()
        every = _("every %(period)s") % {"period": format_period(obj.refresh_every)}
        late_since = [obj.next_refresh_at]
        queued_since = getattr(obj, "queued_since", None)
        if obj.in_progress and queued_since is not None:
            late_since.append(queued_since)
        lag = now - min(late_since)
        if lag > BEHIND_AFTER:
            when = format_html(
                '<span class="fd-behind">{}</span>', _("behind by %(lag)s") % {"lag": format_lag(lag.total_seconds())}
            )
        else:
            local = timezone.localtime(obj.next_refresh_at)
            shown = dateformat.format(local, "H:i:s" if local.date() == timezone.localtime(now).date() else "Y-m-d H:i")
            when = format_html("{} {}", _("next"), shown)
        return format_html(
            '<span class="fd-scheduled fd-nowrap">{}</span> <span class="fd-next fd-nowrap">{}</span>', every, when
        )

    # The detail page ----------------------------------------------------------

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.fieldsets
        return [
            *self.fieldsets,
            (_("Result"), {"fields": ["sampling", "status", "processing_date", "full_chart", "error_text"]}),
            (_("Explore the data"), {"fields": ["explore"]}),
            (_("Stages of the last run"), {"fields": ["stage_trace"], "classes": ["collapse"]}),
            (_("Recent runs"), {"fields": ["run_history"], "classes": ["collapse"]}),
        ]

    @admin.display(description=_("chart"))
    def full_chart(self, obj: Function) -> str:
        if not obj.result_run or obj.chart is None:
            return "—"
        if obj.error:  # a failed run keeps the last chart drawn
            return format_html(
                '<p class="fd-note">{}</p>{}',
                _("The last chart drawn, before the error below:"),
                self._chart_img(obj, "fd-full"),
            )
        return self._chart_img(obj, "fd-full")

    @admin.display(description=_("sampling"))
    def sampling(self, obj: Function) -> str:
        samples = series.sample_count(obj)
        return _("dt = %(dt)s, interval = %(interval)s: %(samples)s samples") % {
            "dt": format_duration(obj.dt, "h"),
            "interval": format_duration(obj.interval, "d"),
            "samples": formats.number_format(samples, force_grouping=True),
        }

    @admin.display(description=_("interactive chart"))
    def explore(self, obj: Function) -> str:
        if obj.processed_at is None or obj.error:
            return "—"
        try:
            library = static("vendor/highcharts/highstock.js")
        except ValueError:  # not collected (deploy/lib.sh ensure_admin_assets copies it): no 500 for that
            library = None
        return render_to_string(
            "admin/functions/function/explore.html",
            {
                "function": obj,
                "points_url": reverse("admin:functions_function_points", args=[obj.pk]),
                "csv_url": reverse("admin:functions_function_csv", args=[obj.pk]),
                "language": get_language(),
                "library": library,
                "subtitle": _("dt = %(dt)s, interval = %(interval)s")
                % {"dt": format_duration(obj.dt, "h"), "interval": format_duration(obj.interval, "d")},
            },
        )

    @admin.display(description=_("error"))
    def error_text(self, obj: Function) -> str:
        return format_html('<pre class="fd-error">{}</pre>', self.error_words(obj)) if obj.error else "—"

    @staticmethod
    def error_words(obj: Function) -> str:
        """The row's stored error in the reader's language (its stored text for an old row)."""
        return messages_words.stored_error(obj.error_code, obj.error_params, obj.error)

    @admin.display(description=_("runs"))
    def run_history(self, obj: Function) -> str:
        runs = selectors.recent_runs(obj.pk)
        if not runs:
            return "—"
        head = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            _("queued"),
            _("state"),
            _("function"),
            _("sends"),
            _("finished"),
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>y = {}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    format_processing_date(run.queued_at),
                    run.get_state_display(),
                    run.expression,
                    run.sends,
                    format_processing_date(run.finished_at) if run.finished_at else "—",
                )
                for run in runs
            ),
        )
        return format_html("<table>{}{}</table>", head, rows)

    @admin.display(description=_("stage trace"))
    def stage_trace(self, obj: Function) -> str:
        trace = obj.trace or {}
        if not trace:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    stage,
                    info.get("queue"),
                    info.get("worker"),
                    info.get("exporter", ""),
                    info.get("seconds", ""),
                    info.get("attempts", ""),
                )
                for stage, info in trace.items()
            ),
        )
        head = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            _("stage"),
            _("queue"),
            _("worker"),
            _("export server"),
            _("seconds"),
            _("attempts"),
        )
        return format_html("<table>{}{}</table>", head, rows)

    # Saving -------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        if change:
            # What the form now says, compared with the row under its lock (not the form's
            # changed_data: picking another preset changes the preset field, not the text box),
            # never the run or result loaded with the form.
            fields = (*services.EDITABLE_FIELDS, *services.SCHEDULE_FIELDS)
            edited = {name: form.cleaned_data[name] for name in fields if name in form.cleaned_data}
            obj.edited_fields = services.update_function(obj.pk, **edited)
            obj.refresh_from_db()
        else:
            created = services.create_function(
                expression=obj.expression, dt=obj.dt, interval=obj.interval, refresh_every=obj.refresh_every
            )
            obj.pk = created.pk
            obj.refresh_from_db()  # the saved row, as the database has it (run id, state)

    def construct_change_message(self, request, form, formsets, add=False):
        # The history names the fields that really changed (the preset picker is not one).
        if add:
            return super().construct_change_message(request, form, formsets, add)
        return [{"changed": {"fields": list(getattr(form.instance, "edited_fields", []))}}]

    def response_change(self, request, obj):
        # "changed successfully" only when something changed; saving an unchanged form says so.
        if getattr(obj, "edited_fields", None) == [] and "_continue" not in request.POST:
            self.message_user(
                request, _("Nothing changed in “%(function)s”: no new chart.") % {"function": obj}, messages.INFO
            )
            return self.response_post_save_change(request, obj)
        return super().response_change(request, obj)

    def response_add(self, request, obj, post_url_continue=None):
        # The add view runs in a transaction; the row's chain is sent when it
        # commits. Then (a callback registered after the chain's, so it runs
        # after it) wait, bounded, for the chart, so the list opens with the
        # outcome (story step 4).
        transaction.on_commit(lambda: selectors.wait_for_outcome(obj.pk, obj.run_id, settings.ADD_WAIT_SECONDS))
        return super().response_add(request, obj, post_url_continue)

    # The data views (functions/views.py) -------------------------------------------

    def get_urls(self):
        # Each view gets this model admin (its view permission, its display methods).
        extra = {"model_admin": self}
        view = self.admin_site.admin_view
        # cacheable: the admin wraps its views in never_cache (no-store), which would make
        # the ETag and the versioned URL useless; chart_view sets its own Cache-Control.
        chart = view(views.chart_view, cacheable=True)
        return [
            path("<int:pk>/chart.png", chart, extra, name="functions_function_chart"),
            path("live-rows.json", view(views.live_rows_view), extra, name="functions_function_live_rows"),
            path("<int:pk>/points.json", view(views.points_view), extra, name="functions_function_points"),
            path("<int:pk>/points.csv", view(views.csv_view), extra, name="functions_function_csv"),
            *super().get_urls(),
        ]

    class Media:
        css = {"all": ["functions/admin.css"]}
        js = ["functions/live_rows.js"]


class LiveChangeList(ChangeList):
    """The list's page of rows, each in-flight row with the stage it reached (from Redis)."""

    def get_results(self, request):
        super().get_results(request)
        # Evaluates the page's queryset once (its cache holds these very rows).
        selectors.set_live_stages(list(self.result_list))
