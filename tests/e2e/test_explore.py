"""A real browser explores a chart, in English and in Russian (issue 13, points 1, 2, 5, 6).

- the add form takes numbers as people type them (``.5``; ``0,5`` in Russian) and the
  list shows them for people (``0.5 h (30 min)``; ``0,5 ч (30 мин)``);
- the list fits 1280x800 without horizontal scrolling, and 1024 px too;
- the detail page's navigator draws exactly the server's M4 envelope of the whole window
  (issue 23 point 3), before and after zooming;
- the detail page's interactive chart of a 10-year, 1-minute series is zoomed with the
  mouse, step by step, down to single minutes: the points are then every sample, and the
  tooltip shows the date and the value f(t) computed here in Python;
- the CSV downloads (zoomed window raw; whole window refused raw with the reason and
  offered as M4) are parsed and every value checked against f(t).
"""

from __future__ import annotations

import csv
import io
import math
import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from playwright.sync_api import Page

from functions.models import Function
from tests.e2e.conftest import off_loop, sign_in
from tests.e2e.test_user_story import LIST_URL, WAIT_SECONDS, assert_columns_in_view, row

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

TEN_YEARS = "sin(t/3600) + t/1e9"
MINUTE = 1 / 60  # dt in hours


def f(t: float) -> float:
    """TEN_YEARS in Python."""
    return math.sin(t / 3600) + t / 1e9


def cos_f(t: float) -> float:
    return math.cos(t / 7200)


DOC_SCREENSHOTS = {  # per test, then language
    "zoom": {"en": {"explore-zoomed": "explore.png"}, "ru": {"explore-zoomed": "explore-ru.png"}},
    "list": {"en": {"list-1280": "list-numbers.png"}, "ru": {"list-1280": "list-ru.png"}},
}


def assert_close(actual: float, expected: float, what: str) -> None:
    assert math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-12), f"{what}: {actual!r} != f(t) = {expected!r}"


def check_csv(text: str, fn, step: float | None = None) -> list[list[str]]:
    """Every CSV row is (t, the same t in UTC, f(t)); ``step``: samples that far apart."""
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["t_unix_seconds", "t_utc", "y"], rows[0]
    body = rows[1:]
    assert body, "the CSV has no rows"
    for t_text, utc, y_text in body:
        t, y = float(t_text), float(y_text)
        assert utc == datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert_close(y, fn(t), f"CSV row t={t_text}")
    times = [float(r[0]) for r in body]
    assert times == sorted(times)
    if step is not None:
        assert all(math.isclose(b - a, step, abs_tol=1e-6) for a, b in zip(times, times[1:], strict=False))
    return body


@pytest.fixture
def ten_years(stack, transactional_db, clean_status) -> Function:
    """A 10-year, 1-minute series (5,256,001 samples), processed by the real pipeline."""
    from functions import selectors, services

    function = services.create_function(expression=TEN_YEARS, dt=MINUTE, interval=3650)
    assert selectors.wait_for_outcome(function.pk, function.run_id, 180), "no chart:\n" + stack.logs()
    function.refresh_from_db()
    assert function.error == "", function.error
    return function


@pytest.mark.parametrize("lang", ["en", "ru"], indirect=True)
def test_numbers_for_people_and_a_list_that_fits(ten_years, page: Page, shots, lang):
    sign_in(page)
    typed = {"en": ".5", "ru": "0,5"}[lang]
    page.locator(".object-tools a.addlink").click()
    page.select_option("select[name=preset]", "__custom__")
    page.fill("input[name=expression]", "cos(t/7200)")
    page.fill("input[name=dt]", typed)
    page.fill("input[name=interval]", "1")
    with page.expect_navigation(url=f"**{LIST_URL}", timeout=WAIT_SECONDS * 1000):
        page.locator("input[name=_save]").click(timeout=WAIT_SECONDS * 1000)
    added = off_loop(lambda: Function.objects.get(expression="cos(t/7200)"))
    # The row finishes without a reload if it was still in flight.
    row(page, "y = cos(t/7200)").locator("img.fd-thumb").wait_for(timeout=WAIT_SECONDS * 1000)
    assert added.dt == 0.5, f"{typed!r} was stored as {added.dt!r}"

    expected = {
        "en": {
            "y = cos(t/7200)": ("0.5 h (30 min)", "1 d"),
            f"y = {TEN_YEARS}": ("0.0167 h (1 min)", "3650 d (10 yr)"),
        },
        "ru": {
            "y = cos(t/7200)": ("0,5 ч (30 мин)", "1 дн."),
            f"y = {TEN_YEARS}": ("0,0167 ч (1 мин)", "3650 дн. (10 г.)"),
        },
    }[lang]
    for label, (dt, interval) in expected.items():
        cells = [
            " ".join(row(page, label).locator(f"td.field-{c}").inner_text().split())
            for c in ("dt_human", "interval_human")
        ]
        assert cells == [dt, interval], f"{label}: {cells}"
    assert_columns_in_view(page)
    shots(page, "list-1280")

    # 1024 px: still every column on screen, no horizontal scrolling.
    page.set_viewport_size({"width": 1024, "height": 768})
    page.reload()
    assert_columns_in_view(page)
    shots(page, "list-1024")
    shots.publish(DOC_SCREENSHOTS["list"][lang])

    # The small series' CSV from its detail page: every sample, y = f(t).
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(reverse("admin:functions_function_change", args=[added.pk]))
    page.wait_for_selector("#fd-explore-chart[data-state=ready]")
    with page.expect_download() as download:
        page.locator("#fd-csv-window").click()
    body = check_csv(download.value.path().read_text(), cos_f, step=1800.0)
    assert len(body) == 49


def chart_state(page: Page) -> dict:
    return page.evaluate(
        """() => {
            const box = document.getElementById('fd-explore-chart'), chart = box.fdChart;
            const rect = box.getBoundingClientRect();
            return {state: box.dataset.state, window: box.dataset.window, samples: Number(box.dataset.samples),
                    decimated: box.dataset.decimated, left: rect.left + chart.plotLeft, top: rect.top + chart.plotTop,
                    width: chart.plotWidth, height: chart.plotHeight, points: chart.series[0].getColumn('x').length,
                    min: chart.xAxis[0].min, max: chart.xAxis[0].max};
        }"""
    )


def assert_navigator_shows(page: Page, envelope: dict) -> None:
    """The navigator draws exactly the server's M4 envelope of the whole window (issue 23 point 3).

    Read from Highcharts in the page: the navigator series' points *as drawn* (after any data
    grouping), its type (straight lines: a spline overshoots between points) and its y range.
    Highstock's default navigator averages pairs of points (data grouping) into a smoother,
    narrower wave that is not in the data: that fails here.
    """
    drawn = page.evaluate(
        """() => { const chart = document.getElementById('fd-explore-chart').fdChart;
                   const s = chart.navigator.series[0];
                   return {type: s.type, grouped: Boolean(s.hasGroupedData),
                           x: Array.from(s.getColumn('x', true)), y: Array.from(s.getColumn('y', true)),
                           min: s.yAxis.dataMin, max: s.yAxis.dataMax}; }"""
    )
    points = envelope["points"]
    assert drawn["type"] == "line" and not drawn["grouped"], {k: drawn[k] for k in ("type", "grouped")}
    assert len(drawn["x"]) == len(points), (
        f"the navigator draws {len(drawn['x'])} points, the envelope has {len(points)}"
    )
    assert drawn["x"] == [p[0] * 1000 for p in points], "the navigator's times are not the envelope's"
    assert drawn["y"] == [p[1] for p in points], "the navigator's values are not the envelope's"
    ys = [p[1] for p in points]
    assert (drawn["min"], drawn["max"]) == (min(ys), max(ys)), "the navigator's range is not the envelope's"


@pytest.mark.parametrize("lang", ["en", "ru"], indirect=True)
def test_zoom_a_ten_year_series_down_to_minutes(ten_years, page: Page, shots, lang):
    sign_in(page)
    change_url = reverse("admin:functions_function_change", args=[ten_years.pk])
    # The first answer of the points endpoint: the whole window's M4 envelope, as the server sent it.
    with page.expect_response(lambda r: "/points.json" in r.url and "start=" not in r.url) as first_answer:
        page.goto(change_url)
    sampling = " ".join(page.locator("div.field-sampling .readonly").inner_text().split())
    assert (
        sampling
        == {
            "en": "dt = 0.0167 h (1 min), interval = 3650 d (10 yr): 5,256,001 samples",
            "ru": "dt = 0,0167 ч (1 мин), interval = 3650 дн. (10 г.): отсчётов 5 256 001",
        }[lang]
    )
    page.wait_for_selector("#fd-explore-chart[data-state=ready]", timeout=WAIT_SECONDS * 1000)
    page.wait_for_function("() => document.getElementById('fd-explore-chart').fdChart !== undefined")
    state = chart_state(page)
    assert state["samples"] == 5_256_001 and state["decimated"] == "1", state
    assert state["points"] <= 4 * state["width"], f"more points than M4 at the plot width: {state}"
    envelope = first_answer.value.json()
    assert envelope["decimated"] and envelope["samples"] == 5_256_001, {k: envelope[k] for k in ("samples", "count")}
    assert_navigator_shows(page, envelope)
    shots(page, "explore-whole")

    # Zoom with the mouse: drag across a twelfth of the plot, again and again, down to minutes.
    page.locator("#fd-explore-chart").scroll_into_view_if_needed()
    for _ in range(8):
        before = chart_state(page)
        if (before["max"] - before["min"]) / 1000 <= 45 * 60:
            break
        x0 = before["left"] + before["width"] * 0.45
        y = before["top"] + before["height"] / 2
        page.mouse.move(x0, y)
        page.mouse.down()
        page.mouse.move(x0 + before["width"] / 12, y, steps=5)
        page.mouse.up()
        page.wait_for_function(
            "w => { const b = document.getElementById('fd-explore-chart');"
            " return b.dataset.state === 'ready' && b.dataset.window !== w; }",
            arg=before["window"],
            timeout=WAIT_SECONDS * 1000,
        )
    state = chart_state(page)
    span = (state["max"] - state["min"]) / 1000
    assert span <= 45 * 60, f"still {span / 60:.0f} minutes shown after zooming: {state}"
    assert_navigator_shows(page, envelope)  # zoomed in, the navigator still shows the whole window's envelope
    # Every sample of the window, one minute apart: exact values, no decimation.
    assert state["decimated"] == "0", state
    assert state["points"] == state["samples"] >= 10, state
    steps = page.evaluate(
        "() => { const x = document.getElementById('fd-explore-chart').fdChart.series[0].getColumn('x');"
        " return x.slice(1).map((v, i) => v - x[i]); }"
    )
    assert all(math.isclose(step, 60_000, abs_tol=1e-3) for step in steps), steps[:5]

    # Hover a point in the middle: the tooltip shows its date and f(t).
    target = page.evaluate(
        """() => { const chart = document.getElementById('fd-explore-chart').fdChart;
                   const p = chart.series[0].points[Math.floor(chart.series[0].points.length / 2)];
                   return {x: p.plotX, y: p.plotY}; }"""
    )
    page.mouse.move(state["left"] + target["x"] - 40, state["top"] + target["y"])
    page.mouse.move(state["left"] + target["x"], state["top"] + target["y"], steps=8)
    page.wait_for_function("() => document.getElementById('fd-explore-chart').fdChart.hoverPoint", timeout=5000)
    hovered = page.evaluate(
        "() => { const p = document.getElementById('fd-explore-chart').fdChart.hoverPoint; return [p.x, p.y]; }"
    )
    tooltip = page.locator(".highcharts-tooltip").last
    tooltip.wait_for(state="visible")
    t = hovered[0] / 1000
    # The chart holds t in milliseconds: the round trip through x * 1000 / 1000 can move t
    # by a few ulps (~1e-7 s at today's t), which moves f(t) by up to |f'(t)| times that.
    slack = 4 * math.ulp(t) * (1 / 3600 + 1e-9)
    assert math.isclose(hovered[1], f(t), rel_tol=1e-12, abs_tol=slack), (
        f"the hovered point: {hovered[1]!r} != f(t) = {f(t)!r} (slack {slack:.1e})"
    )
    text = tooltip.text_content().replace("\u200b", " ")  # SVG text: the lines joined by a zero-width space
    date = datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    # The tooltip shows the sample's value exactly as datagen computed it (checked against f(t) above).
    value = repr(hovered[1]).replace(".", "," if lang == "ru" else ".")
    assert text == f"{date} UTC y = {value}", f"tooltip {text!r}, expected date {date} and y = {value}"
    shown = float(re.search(r"y = (\S+)$", text).group(1).replace(",", "."))
    assert shown == hovered[1], f"the tooltip's value {shown!r} != the point's {hovered[1]!r}"
    shots(page, "explore-zoomed")

    # The CSV of the shown window: every sample, exact values.
    with page.expect_download() as download:
        page.locator("#fd-csv-window").click()
    body = check_csv(download.value.path().read_text(), f, step=60.0)
    assert len(body) == state["samples"]

    # The whole window's raw CSV is refused with the reason, and M4 is offered.
    whole = page.request.get(reverse("admin:functions_function_csv", args=[ten_years.pk]))
    assert whole.status == 409, whole.status
    page.goto(reverse("admin:functions_function_csv", args=[ten_years.pk]))
    assert "5256001" in page.locator("#content").inner_text().replace(" ", "").replace("\u00a0", "").replace(",", "")
    m4_link = page.locator("#content a.button")
    with page.expect_download() as download:
        m4_link.click()
    body = check_csv(download.value.path().read_text(), f)
    assert 2000 <= len(body) <= 4 * 2000, len(body)
    shots.publish(DOC_SCREENSHOTS["zoom"][lang])
