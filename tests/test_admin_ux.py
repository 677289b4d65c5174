"""The admin's numbers for people, its live-rows endpoint and the point/CSV endpoints' input checks."""

from __future__ import annotations

import math

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from functions.forms import FunctionForm
from functions.models import Function
from functions.numbers import format_duration, format_number
from pipeline import status
from pipeline.charts import chart_options, y_axis_scale

LIVE_URL = reverse("admin:functions_function_live_rows")


@pytest.mark.parametrize(
    ("value", "unit", "en", "ru"),
    [
        (1 / 60, "h", "0.0167 h (1 min)", "0,0167 ч (1 мин)"),
        (1, "h", "1 h", "1 ч"),
        (0.5, "h", "0.5 h (30 min)", "0,5 ч (30 мин)"),
        (1.25, "h", "1.25 h", "1,25 ч"),
        (24, "h", "24 h (1 d)", "24 ч (1 дн.)"),
        (3650, "d", "3650 d (10 yr)", "3650 дн. (10 г.)"),
        (0.5, "d", "0.5 d (12 h)", "0,5 дн. (12 ч)"),
        (2.5e7, "d", "2.5×10⁷ d (68500 yr)", "2,5×10⁷ дн. (68500 г.)"),
    ],
)
def test_durations_read_as_people_write_them(value, unit, en, ru):
    with translation.override("en"):
        assert format_duration(value, unit) == en
    with translation.override("ru"):
        assert format_duration(value, unit) == ru


def test_numbers_never_show_a_floats_repr():
    with translation.override("en"):
        assert format_number(0.016666666666666666) == "0.0167"
        assert format_number(1234567.0) == "1.23×10⁶"
        assert format_number(3e-7) == "3×10⁻⁷"
        assert format_number(0.0) == "0"
        assert format_number(1234.5678) == "1235"
        assert format_number(0.10004) == "0.10004"  # as typed
        assert format_number(0.1000000004) == "0.1"
        assert format_number(9999999.9) == "1×10⁷"
    with translation.override("ru"):
        assert format_number(0.016666666666666666) == "0,0167"


def test_the_form_field_names_a_bad_number():
    form = FunctionForm(data={"preset": "sin(t)", "expression": "", "dt": "1,5,6", "interval": "x"})
    assert not form.is_valid()
    assert set(form.errors) >= {"dt", "interval"}


def test_y_axis_labels_stay_readable_for_any_magnitude():
    assert y_axis_scale([0.5, -1.0]) == 0
    assert y_axis_scale([3.2e18]) == 18
    assert y_axis_scale([1.7e9, 1.8e9]) == 9
    assert y_axis_scale([1e-7]) == -9
    big = chart_options("t*t", [[1.7e9, 2.89e18], [1.7e9 + 60, 2.89e18 + 2e11]], 1 / 60, 1)
    assert big["yAxis"]["title"]["text"] == "y, ×10¹⁸"
    assert big["yAxis"]["labels"]["format"].startswith("{(divide value 1000000000000000000):.")
    assert big["subtitle"]["text"] == "dt = 0.0167 h (1 min), interval = 1 d"
    small = chart_options("sin(t)", [[1.7e9, 0.5], [1.7e9 + 60, -0.5]], 1, 3650)
    assert small["yAxis"]["labels"]["format"] == "{value}"  # no k/M/G suffixes
    assert small["xAxis"]["dateTimeLabelFormats"]["hour"] == "%H:%M"  # 24 hours, both languages
    assert small["xAxis"]["dateTimeLabelFormats"]["day"] == "%Y-%m-%d"


def test_live_rows_renders_the_cells_of_the_list(admin_client):
    done = Function.objects.create(
        expression="sin(t)", dt=1, interval=1, state=Function.State.DONE, processed_at=timezone.now()
    )
    queued = Function.objects.create(expression="cos(t)", dt=1, interval=1, state=Function.State.QUEUED)
    status.start_runs([(queued.pk, str(queued.run_id), 0.0)])
    body = admin_client.get(LIVE_URL, {"ids": f"{done.pk},{queued.pk}"}).json()
    rows = {row["id"]: row for row in body["rows"]}
    assert rows[done.pk]["in_progress"] is False
    assert rows[queued.pk]["in_progress"] is True
    assert "fd-running" in rows[queued.pk]["cells"]["status"]
    assert set(rows[done.pk]["cells"]) == {"chart_or_error", "processing_date", "status", "schedule"}
    # The same cells as the list page renders.
    page = admin_client.get(reverse("admin:functions_function_changelist")).content.decode()
    assert rows[done.pk]["cells"]["processing_date"] in page


@pytest.mark.parametrize("ids", ["1,x", ",".join(str(i) for i in range(501))])
def test_live_rows_refuses_bad_ids_naming_the_field(admin_client, ids):
    response = admin_client.get(LIVE_URL, {"ids": ids})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "ids"


def test_live_rows_needs_a_signed_in_staff_user(client, db):
    response = client.get(LIVE_URL, {"ids": "1"})
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"start": "x"}, "start"),
        ({"end": "nan"}, "end"),
        ({"width": "0"}, "width"),
        ({"start": "5", "end": "1"}, "end"),
    ],
)
def test_points_refuses_bad_windows_naming_the_field(admin_client, query, field):
    function = Function.objects.create(
        expression="sin(t)", dt=1, interval=1, state=Function.State.DONE, processed_at=timezone.now()
    )
    for name in ("functions_function_points", "functions_function_csv"):
        response = admin_client.get(reverse(f"admin:{name}", args=[function.pk]), query)
        assert response.status_code == 400, (name, response.content)
        assert response.json()["errors"][0]["field"] == field


def test_a_zoomed_window_snaps_to_the_rows_samples():
    from functions.series import processing_window

    end = timezone.now()
    function = Function(expression="t", dt=1, interval=1, processed_at=end)
    whole = processing_window(function)
    assert (whole.first, whole.last, whole.count) == (0, 24, 25)
    part = processing_window(function, whole.start + 3.5 * 3600, whole.start + 5.2 * 3600)
    assert (part.first, part.last) == (3, 6)
    request = part.request(function.dt)
    assert math.isclose(request["end"], whole.start + 6 * 3600)
    assert math.isclose(request["interval"] * 24, 3)
