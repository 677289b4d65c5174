"""The Django admin of functions: list with charts, add form, the Refresh action."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils import dateformat, timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import condition

from functions import selectors, services
from functions.forms import FunctionForm
from functions.models import Function


def format_processing_date(value: datetime) -> str:
    """A processing date as the admin shows it: to the second, in the current time zone."""
    return dateformat.format(timezone.localtime(value), "Y-m-d H:i:s T")


# How long a browser keeps a versioned chart URL (?v=<result_run>): a year.
CHART_MAX_AGE = 365 * 24 * 3600

STAGE_LABELS = {
    "queued": _("queued"),
    "points": _("generating points"),
    "rendering": _("rendering"),
    "persisting": _("saving"),
}


admin.site.site_header = _("Function Dashboard")
admin.site.site_title = _("Function Dashboard")
admin.site.index_title = _("Functions and their charts")
admin.site.enable_nav_sidebar = False


@admin.action(description=_("Refresh"), permissions=["change"])
def refresh(modeladmin: FunctionAdmin, request: HttpRequest, queryset) -> None:
    count = services.refresh_functions(queryset)
    modeladmin.message_user(
        request,
        ngettext(
            "%(count)d function queued for refresh. Reload the page to see the new chart.",
            "%(count)d functions queued for refresh. Reload the page to see the new charts.",
            count,
        )
        % {"count": count},
        messages.SUCCESS,
    )


@admin.register(Function)
class FunctionAdmin(admin.ModelAdmin):
    form = FunctionForm
    list_display = ["formula", "chart_or_error", "dt", "interval", "processing_date", "status"]
    list_display_links = ["formula"]
    list_filter = ["state"]
    search_fields = ["expression"]
    sortable_by = ["formula", "dt", "interval", "processing_date"]
    ordering = ["-created_at", "-id"]
    list_per_page = 20
    actions = [refresh]
    fieldsets = [(None, {"fields": ["preset", "expression", "dt", "interval"]})]
    readonly_fields = ["full_chart", "error_text", "processing_date", "status", "stage_trace"]

    # The list -----------------------------------------------------------------

    def get_queryset(self, request):
        # The list never loads the PNGs; the <img> tags fetch them from chart_view.
        return super().get_queryset(request).defer("chart", "trace")

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "batches": selectors.recent_batches()}
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            # Evaluates (and caches) the page's rows once; the columns read .live_stage.
            rows = list(changelist.result_list)
            live = selectors.live_states(rows)
            for row in rows:
                row.live_stage = live.get(row.pk, "queued")
        return response

    @admin.display(description=_("function"), ordering="expression")
    def formula(self, obj: Function) -> str:
        return f"y = {obj.expression}"

    def _chart_img(self, obj: Function, css_class: str) -> str:
        url = reverse("admin:functions_function_chart", args=[obj.pk])
        return format_html('<img class="{}" src="{}?v={}" alt="{}">', css_class, url, obj.result_run, obj)

    @admin.display(description=_("chart"))
    def chart_or_error(self, obj: Function) -> str:
        if obj.error:
            return format_html('<pre class="fd-error">{}</pre>', obj.error)
        if obj.result_run:
            return self._chart_img(obj, "fd-thumb")
        return format_html('<span class="fd-pending">{}</span>', _("not rendered yet"))

    @admin.display(description=_("processing date"), ordering="processed_at", empty_value="—")
    def processing_date(self, obj: Function) -> str | None:
        # To the second: a refresh within the same minute must show a new date.
        return format_processing_date(obj.processed_at) if obj.processed_at else None

    @admin.display(description=_("status"), ordering="state")
    def status(self, obj: Function) -> str:
        if not obj.in_progress:
            return obj.get_state_display()
        stage = getattr(obj, "live_stage", "queued")
        return format_html('<span class="fd-running">{}…</span>', STAGE_LABELS.get(stage, stage))

    # The detail page ----------------------------------------------------------

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.fieldsets
        return [
            *self.fieldsets,
            (_("Result"), {"fields": ["status", "processing_date", "full_chart", "error_text"]}),
            (_("Stages of the last run"), {"fields": ["stage_trace"], "classes": ["collapse"]}),
        ]

    @admin.display(description=_("chart"))
    def full_chart(self, obj: Function) -> str:
        return self._chart_img(obj, "fd-full") if obj.result_run and not obj.error else "—"

    @admin.display(description=_("error"))
    def error_text(self, obj: Function) -> str:
        return format_html('<pre class="fd-error">{}</pre>', obj.error) if obj.error else "—"

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
            # Only the changed fields, under a row lock: never the run or result loaded with the form.
            edited = {name: getattr(obj, name) for name in form.changed_data if name in services.EDITABLE_FIELDS}
            services.update_function(obj.pk, **edited)
        else:
            created = services.create_function(expression=obj.expression, dt=obj.dt, interval=obj.interval)
            obj.pk, obj.run_id, obj._state.adding = created.pk, created.run_id, False
        request._fd_saved = obj

    def add_view(self, request, form_url="", extra_context=None):
        response = super().add_view(request, form_url, extra_context)
        saved = getattr(request, "_fd_saved", None)
        if saved is not None and response.status_code == 302:
            # The row is committed and its chain started: wait (bounded) for its
            # chart, so the list opens with the outcome (story step 4).
            selectors.wait_for_outcome(saved.pk, saved.run_id, settings.ADD_WAIT_SECONDS)
        return response

    # The chart image ------------------------------------------------------------

    def get_urls(self):
        # cacheable: the admin wraps its views in never_cache (no-store), which would make
        # the ETag and the versioned URL useless; chart_view sets its own Cache-Control.
        chart = self.admin_site.admin_view(self.chart_view, cacheable=True)
        return [
            path("<int:pk>/chart.png", chart, name="functions_function_chart"),
            *super().get_urls(),
        ]

    def chart_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        # Permission first: the conditional answer (304/412) must not tell a user
        # without view permission that a chart exists.
        if not self.has_view_permission(request):
            raise PermissionDenied
        return self._chart_response(request, pk)

    @method_decorator(condition(etag_func=lambda request, pk: selectors.chart_etag(pk)))
    def _chart_response(self, request: HttpRequest, pk: int) -> HttpResponse:
        chart = selectors.function_chart(pk)
        if chart is None:
            raise Http404
        response = HttpResponse(chart.png, content_type="image/png")
        if request.GET.get("v") == chart.etag:
            # The list and the detail page link ?v=<result_run>: that URL's bytes never
            # change (a new run is a new URL), so the browser keeps it without asking.
            response["Cache-Control"] = f"private, max-age={CHART_MAX_AGE}, immutable"
        else:
            response["Cache-Control"] = "private, no-cache"
        return response

    class Media:
        css = {"all": ["functions/admin.css"]}
