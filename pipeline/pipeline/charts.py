"""Highcharts options for a function's chart (a pure function, unit-tested)."""

from __future__ import annotations

import math
from typing import Any

from pipeline.errors import StageFailure


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
        "chart": {"animation": False, "spacing": [12, 16, 12, 12]},
        "title": {"text": f"y = {expression}"},
        "subtitle": {"text": f"dt = {_fmt(dt)} h, interval = {_fmt(interval)} d, t in unix seconds"},
        "time": {"useUTC": True},
        "xAxis": {"type": "datetime", "title": {"text": "t (UTC)"}},
        "yAxis": {"title": {"text": "y"}},
        "legend": {"enabled": False},
        "credits": {"enabled": False},
        "tooltip": {"enabled": False},
        "plotOptions": {"series": {"animation": False, "enableMouseTracking": False}},
        "series": [series],
    }
