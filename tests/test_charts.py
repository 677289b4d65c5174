"""The chart options builder (a pure function)."""

import math

import pytest

from pipeline.charts import chart_options
from pipeline.errors import StageFailure


def test_datetime_axis_in_milliseconds_and_the_function_as_title():
    options = chart_options("t + 2/t", [[1_700_000_000.0, 1.0], [1_700_003_600.0, 2.5]], 1, 1)
    assert options["xAxis"]["type"] == "datetime"
    assert options["title"]["text"] == "y = t + 2/t"
    assert options["series"][0]["data"] == [[1_700_000_000_000.0, 1.0], [1_700_003_600_000.0, 2.5]]


@pytest.mark.parametrize(
    "points",
    [[], [[1.0]], [[1.0, math.nan]], [[1.0, math.inf]], [["1", 2.0]], [None]],
)
def test_anything_but_finite_pairs_is_refused(points):
    with pytest.raises(StageFailure):
        chart_options("t", points, 1, 1)
