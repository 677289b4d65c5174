"""Highcharts options for a function's chart (a pure function, unit-tested)."""

from __future__ import annotations

import math
from typing import Any

from pipeline import settings
from pipeline.errors import StageFailure

# Fixed horizontal margins make the plot area's width known before rendering,
# so datagen can decimate (M4) to exactly one column per pixel of the line.
MARGIN_LEFT = 120  # room for ten-digit y labels such as 1,795,918,583
MARGIN_RIGHT = 24


def plot_width(chart_width: int) -> int:
    """Pixels of the plot area of a chart ``chart_width`` pixels wide."""
    return max(1, chart_width - MARGIN_LEFT - MARGIN_RIGHT)


# The series colour (Highcharts' first default colour), shared by the line and
# the band under it so that the two read as one stroke.
SERIES_COLOR = "#2caffe"
# The band's edge: a hairline that gives its anti-aliased border the weight of
# the many overlapping strokes of the raw line (measured by datagen/bench.py).
BAND_EDGE_WIDTH = 0.3


def envelope(points: list[list[float]], width: int) -> list[list[float]]:
    """[centre x, min y, max y] of each pixel column that holds points.

    Columns as datagen's M4 decimation makes them: the point at x falls in
    column floor(width * (x - x_first) / (x_last - x_first)), the last point in
    column width - 1; the x axis spans exactly the first to the last point.
    """
    x0, x1 = points[0][0], points[-1][0]
    if x1 <= x0:
        return []
    columns: dict[int, list[float]] = {}
    for x, y in points:
        b = min(width - 1, math.floor(width * (x - x0) / (x1 - x0)))
        column = columns.get(b)
        if column is None:
            columns[b] = [x, x, y, y]
        else:
            column[1] = x
            column[2] = min(column[2], y)
            column[3] = max(column[3], y)
    return [[(first + last) / 2, low, high] for first, last, low, high in (columns[b] for b in sorted(columns))]


def is_dense(points: list[list[float]], dt: float, width: int) -> bool:
    """True when ``points`` are datagen's M4 decimation of a series with more
    than 4 samples per pixel column: the sample count follows from the span and
    dt, and fewer points than samples arrived."""
    samples = round((points[-1][0] - points[0][0]) / (dt * 3600.0)) + 1
    return samples > 4 * width and samples > len(points)


def _fmt(value: float) -> str:
    return f"{value:g}"


def chart_options(
    expression: str, points: list[list[float]], dt: float, interval: float, chart_width: int | None = None
) -> dict:
    """Build the options of a line chart of ``points`` ([[unix seconds, y], ...]).

    The x axis is a datetime axis, so x goes to Highcharts in milliseconds.
    Anything that is not a finite pair is refused here: the export server would
    answer 200 with an empty chart instead of an error.

    A dense series (more than 4 samples per pixel column, so decimated by
    datagen) also gets its per-column envelope as an ``arearange`` band in the
    line's colour under the line: the raw line would fill each column from its
    minimum to its maximum with many overlapping strokes, which the M4 points
    (first, min, max, last per column) alone draw with a few thin ones.
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
        "color": SERIES_COLOR,
        "lineWidth": 1.5,
        "marker": {"enabled": len(data) <= 60, "radius": 2},
        "animation": False,
        "zIndex": 1,
    }
    all_series = [series]
    width = plot_width(chart_width or settings.CHART_WIDTH)
    if len(points) > 1 and is_dense(points, dt, width):
        all_series.append(
            {
                "type": "arearange",
                "name": f"y = {expression}, range per pixel",
                "data": [[x * 1000.0, low, high] for x, low, high in envelope(points, width)],
                "color": SERIES_COLOR,
                "fillOpacity": 1,
                "lineWidth": BAND_EDGE_WIDTH,
                "marker": {"enabled": False},
                "animation": False,
                "zIndex": 0,
                "turboThreshold": 0,  # [x, low, high] triples beyond 1,000 points
                "showInLegend": False,
            }
        )
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
        "series": all_series,
    }
