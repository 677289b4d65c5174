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


# One stored image serves English and Russian readers alike, so its labels are
# language-neutral: ISO 8601 dates, 24-hour times, SI unit symbols (s, min, h, d)
# and a decimal point. Highcharts 12+ would otherwise pick the export server's
# locale ("Nov 28", "08:00 AM").
DATE_TIME_LABELS = {
    "millisecond": "%H:%M:%S.%L",
    "second": "%H:%M:%S",
    "minute": "%H:%M",
    "hour": "%H:%M",
    "day": "%Y-%m-%d",
    "week": "%Y-%m-%d",
    "month": "%Y-%m",
    "year": "%Y",
}
SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
# A readable unit for a duration, largest first (seconds per unit, SI symbol).
DURATION_UNITS = [(365 * 86400.0, "yr"), (86400.0, "d"), (3600.0, "h"), (60.0, "min"), (1.0, "s")]


def _strip(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_number(value: float, digits: int = 3) -> str:
    """A number for people, with a decimal point (the admin localizes the separator).

    As typed when short (``1.25``, ``3650``), else ``digits`` significant digits
    (``0.0167``); ``×10ⁿ`` beyond 10⁶ and below 10⁻⁴, never a float's repr.
    """
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    exponent = math.floor(math.log10(abs(value)))
    short = f"{value:.6g}"
    if -4 <= exponent < 6:
        if float(short) == value:
            return short
        return _strip(f"{value:.{max(0, digits - 1 - exponent)}f}")
    if float(short) != value:
        short = f"{value:.{digits - 1}e}"
    mantissa, exponent_text = short.split("e")
    return f"{_strip(mantissa)}×10{str(int(exponent_text)).translate(SUPERSCRIPT)}"


def readable_duration(seconds: float, units: list[tuple[float, str]] = DURATION_UNITS) -> tuple[str, str]:
    """``seconds`` in the largest unit it fills: (number text, SI symbol), e.g. ``("1", "min")``."""
    size, symbol = next(((s, u) for s, u in units if abs(seconds) >= s), units[-1])
    return format_number(float(f"{seconds / size:.3g}")), symbol


def _duration(value: float, unit: str) -> str:
    """``0.0167 h (1 min)``: the value in its unit, with a readable unit beside it when that helps."""
    # No years in the image: "yr" is no SI symbol (the admin's pages say it in words).
    number, symbol = readable_duration(value * (3600.0 if unit == "h" else 86400.0), DURATION_UNITS[1:])
    text = f"{format_number(value)} {unit}"
    return text if symbol == unit else f"{text} ({number} {symbol})"


def y_axis_scale(values: list[float]) -> int:
    """The power of ten (a multiple of 3) the y labels are divided by; 0 when plain numbers read well.

    Highcharts' SI suffixes become absurd for large values ("3,226,000T"), and
    tiny values lose their digits; beyond 10⁶ and below 10⁻³ the labels show the
    mantissa and the axis title the factor (``y, ×10¹²``).
    """
    biggest = max((abs(v) for v in values), default=0.0)
    if biggest == 0 or 1e-3 <= biggest < 1e6:
        return 0
    return 3 * math.floor(math.log10(biggest) / 3)


def _y_axis(values: list[float]) -> dict[str, Any]:
    scale = y_axis_scale(values)
    style = {"fontSize": "13px"}
    if scale == 0:
        # "{value}" formats the number in full (no k/M/G suffix), with a space between thousands.
        return {"title": {"text": "y", "style": {"fontSize": "15px"}}, "labels": {"format": "{value}", "style": style}}
    factor = f"10{str(scale).translate(SUPERSCRIPT)}"
    operation = "divide" if scale > 0 else "multiply"
    low, high = min(values), max(values)
    span = (high - low) / 10**scale
    # Enough decimals to tell about five ticks apart.
    decimals = 0 if span <= 0 else min(10, max(0, 1 - math.floor(math.log10(span / 5))))
    return {
        "title": {"text": f"y, ×{factor}", "style": {"fontSize": "15px"}},
        # Templating (no code runs in the export server), with integer operands: the
        # template language reads "0.001" as a property path.
        "labels": {"format": f"{{({operation} value 1{'0' * abs(scale)}):.{decimals}f}}", "style": style},
    }


# The series colour (Highcharts' first default colour), shared by the line and
# the band under it so that the two read as one stroke.
SERIES_COLOR = "#2caffe"
# The band's edge: a hairline that gives its anti-aliased border the weight of
# the many overlapping strokes of the raw line (measured by tests/bench_datagen.py).
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
            raise StageFailure(
                f"point {index} is not an [x, y] pair: {point!r:.80}", cause="bad_points", params={"index": index}
            )
        x, y = point
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in (x, y)):
            raise StageFailure(
                f"point {index} is not a finite [x, y] pair: {point!r:.80}", cause="bad_points", params={"index": index}
            )
        data.append([x * 1000.0, y])
    if not data:
        raise StageFailure("the series has no points", cause="no_points")
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
            "text": f"dt = {_duration(dt, 'h')}, interval = {_duration(interval, 'd')}",
            "style": {"fontSize": "15px"},
        },
        "time": {"timezone": "UTC"},
        "xAxis": {
            "type": "datetime",
            "title": {"text": "t (UTC)", "style": {"fontSize": "15px"}},
            "labels": {"style": {"fontSize": "15px"}},
            "dateTimeLabelFormats": DATE_TIME_LABELS,
            # The axis spans exactly the samples, as the M4 columns do.
            "min": data[0][0],
            "max": data[-1][0],
            "minPadding": 0,
            "maxPadding": 0,
        },
        "yAxis": _y_axis([point[1] for point in data]),
        "legend": {"enabled": False},
        "credits": {"enabled": False},
        "tooltip": {"enabled": False},
        "plotOptions": {"series": {"animation": False, "enableMouseTracking": False}},
        "series": all_series,
    }
