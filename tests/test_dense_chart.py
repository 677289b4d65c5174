"""The band under a dense series is really drawn by the export server (its module is loaded)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pipeline import clients
from pipeline.charts import MARGIN_LEFT, MARGIN_RIGHT, SERIES_COLOR, chart_options

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

WIDTH, HEIGHT = 400, 300


def _series_share(png: bytes, top: int, bottom: int) -> float:
    """Share of the plot's pixels between rows top and bottom in the series colour."""
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    color = np.array([int(SERIES_COLOR[k : k + 2], 16) for k in (1, 3, 5)])
    near = np.abs(img - color).max(axis=2) <= 16
    return float(near[top:bottom, MARGIN_LEFT + 2 : WIDTH - MARGIN_RIGHT - 2].mean())


def _rows(png: bytes) -> np.ndarray:
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    color = np.array([int(SERIES_COLOR[k : k + 2], 16) for k in (1, 3, 5)])
    near = np.abs(img - color).max(axis=2) <= 16
    return np.nonzero(near[:, MARGIN_LEFT + 2 : WIDTH - MARGIN_RIGHT - 2].any(axis=1))[0]


def test_dense_series_band_fills_each_column_from_min_to_max(stack):
    # Per pixel column: first 0, minimum -1, maximum 1, last 0 (M4 of a fast
    # oscillation): the band is the rectangle from -1 to 1 over the whole plot.
    plot_px = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    samples_per_column = 40
    points = []
    for b in range(plot_px):
        i0 = b * samples_per_column
        for offset, y in ((0, 0.0), (10, -1.0), (30, 1.0), (samples_per_column - 1, 0.0)):
            points.append([1_700_000_000.0 + (i0 + offset) * 60.0, y])
    samples = plot_px * samples_per_column
    options = chart_options("dense", points, 1 / 60, samples / 1440, chart_width=WIDTH)
    assert [s["type"] for s in options["series"]] == ["line", "arearange"]
    band_only = {**options, "series": options["series"][1:]}

    png = clients.render_png(stack.exporter_urls[0], band_only, WIDTH, HEIGHT)
    rows = _rows(png)
    assert len(rows) > 40, rows  # the band was drawn (the export server knows arearange)
    top, bottom = rows[0], rows[-1]
    assert _series_share(png, top + 2, bottom - 2) > 0.97  # and filled from min to max in every column
    whole = clients.render_png(stack.exporter_urls[0], options, WIDTH, HEIGHT)
    assert _series_share(whole, top + 2, bottom - 2) > 0.97  # the line over it changes nothing inside
