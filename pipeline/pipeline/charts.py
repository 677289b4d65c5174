"""Highcharts options for a function's chart (a pure function, unit-tested)."""

from __future__ import annotations

import math
from typing import Any

from pipeline.errors import StageFailure

# Fixed horizontal margins make the plot area's width known before rendering,
# so datagen can decimate (M4) to exactly one column per pixel of the line.
MARGIN_LEFT = 120  # room for ten-digit y labels such as 1,795,918,583
MARGIN_RIGHT = 24


def plot_width(chart_width: int) -> int:
    """Pixels of the plot area of a chart ``chart_width`` pixels wide."""
    return max(1, chart_width - MARGIN_LEFT - MARGIN_RIGHT)


def _fmt(value: float) -> str:
    return f"{value:g}"


def chart_options(expression: str, points: list[list[float]], dt: float, interval: float) -> dict:
    """Build the options of a line chart of ``points`` ([[unix seconds, y], ...]).

    The x axis is a datetime axis, so x goes to Highcharts in milliseconds.
    Anything that is not a finite pair is refused here: the export server would
    answer 200 with an empty chart instead of an error.
    """
    data: list[list[float]] = []
    for index, point in enumerate(points):
        if not (isinstance(point, list | tuple) and len(point) == 2):
            raise StageFailure(f"point {index} is not an [x, y] pair: {point!r:.80}")
        x, y = point
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in (x, y)):
            raise StageFailure(f"point {index} is not a finite [x, y] pair: {point!r:.80}")
        data.append([x * 1000.0, y])
    if not data:
        raise StageFailure("the series has no points")
    series: dict[str, Any] = {
        "type": "line",
        "name": f"y = {expression}",
        "data": data,
        "lineWidth": 1.5,
        "marker": {"enabled": len(data) <= 60, "radius": 2},
        "animation": False,
    }
    return {
        "chart": {
            "animation": False,
            "marginLeft": MARGIN_LEFT,
            "marginRight": MARGIN_RIGHT,
            # Large enough to stay legible in the list's half-size thumbnail.
            "style": {"fontSize": "15px"},
        },
        "title": {"text": f"y = {expression}", "style": {"fontSize": "24px"}},
        "subtitle": {
            "text": f"dt = {_fmt(dt)} h, interval = {_fmt(interval)} d, t in unix seconds",
            "style": {"fontSize": "15px"},
        },
        "time": {"useUTC": True},
        "xAxis": {
            "type": "datetime",
            "title": {"text": "t (UTC)", "style": {"fontSize": "15px"}},
            "labels": {"style": {"fontSize": "15px"}},
            # The axis spans exactly the samples, as the M4 columns do.
            "min": data[0][0],
            "max": data[-1][0],
            "minPadding": 0,
            "maxPadding": 0,
        },
        "yAxis": {"title": {"text": "y", "style": {"fontSize": "15px"}}, "labels": {"style": {"fontSize": "13px"}}},
        "legend": {"enabled": False},
        "credits": {"enabled": False},
        "tooltip": {"enabled": False},
        "plotOptions": {"series": {"animation": False, "enableMouseTracking": False}},
        "series": [series],
    }
