"""M4 decimation: first, last, min and max per pixel column, from the one statement."""

from __future__ import annotations

import math

import pytest
from django.db import connection

from series import queries
from series.expressions import compile_expression

END = 1764374400.5


def m4_reference(points: list[list[float]], width: int) -> list[list[float]]:
    """M4 computed in Python from the raw points: column b = floor(w*(t-t0)/(t_last-t0))."""
    n = len(points)
    columns: list[list[int]] = [[] for _ in range(width)]
    t0, t_last = points[0][0], points[-1][0]
    for i in range(n):
        b = min(width - 1, math.floor(width * (i / (n - 1))))
        columns[b].append(i)
    # the x mapping of the chart: the same column as from the times themselves
    assert all(
        min(width - 1, math.floor(width * (points[i][0] - t0) / (t_last - t0))) == b
        for b, col in enumerate(columns)
        for i in (col[0], col[-1])
    )
    out: list[list[float]] = []
    for col in columns:
        lo, hi = col[0], col[-1]
        assert col, "every column holds a sample when n > 4*width"
        i_min = min(col, key=lambda i: (points[i][1], i))
        i_max = max(col, key=lambda i: (points[i][1], -i))
        for i in sorted({lo, i_min, i_max, hi}):
            out.append(points[i])
    return out


@pytest.mark.parametrize(
    "expression, interval, dt, width",
    [
        ("sin(t / 3000) + sin(t / 77) / 3", 1, 1 / 60, 50),  # 1441 samples
        ("t + 2/t", 2, 1 / 30, 7),  # monotonic
        ("floor(sin(t / 500) * 3)", 1, 1 / 120, 101),  # ties everywhere
        ("cos(t)", 10, 0.25, 3),
        ("abs(t - 1764330000)", 1.3, 0.01, 33),  # n not a multiple of w
    ],
)
@pytest.mark.parametrize("chunk", [queries.PARALLEL_CHUNK, 97], ids=["one part", "many parts"])
def test_m4_equals_reference(
    api, monkeypatch, expression: str, interval: float, dt: float, width: int, chunk: int
) -> None:
    # With a small chunk the same series is computed in many UNION ALL parts
    # (the shape big series take so that PostgreSQL runs them in parallel).
    monkeypatch.setattr(queries, "PARALLEL_CHUNK", chunk)
    raw = api.points(expression=expression, interval=interval, dt=dt, end=END).json()
    n = raw["samples"]
    assert n > 4 * width
    r = api.points(expression=expression, interval=interval, dt=dt, end=END, width=width)
    assert r.status_code == 200, r.content
    m4 = r.json()
    assert m4["decimated"] is True
    assert m4["samples"] == n
    assert m4["count"] == len(m4["points"]) <= 4 * width
    assert m4["points"] == m4_reference(raw["points"], width)
    xs = [p[0] for p in m4["points"]]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    assert m4["points"][0] == raw["points"][0] and m4["points"][-1] == raw["points"][-1]
    ys = [p[1] for p in raw["points"]]
    assert min(p[1] for p in m4["points"]) == min(ys)
    assert max(p[1] for p in m4["points"]) == max(ys)


def test_no_decimation_up_to_four_points_per_pixel(api) -> None:
    # 25 samples: width 7 -> 28 >= 25, raw; width 6 -> 24 < 25, M4
    raw = api.points(expression="sin(t)", interval=1, dt=1, end=END, width=7).json()
    assert raw["decimated"] is False and raw["count"] == raw["samples"] == 25
    m4 = api.points(expression="sin(t)", interval=1, dt=1, end=END, width=6).json()
    assert m4["decimated"] is True and m4["count"] <= 24


def test_ten_years_at_one_minute_is_decimated(api) -> None:
    # ~5.26 million samples (more than the raw limit) -> at most 4 * width points.
    r = api.points(expression="t + 2/t", interval=3652.5, dt=1 / 60, end=END, width=1000)
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["samples"] == math.floor(3652.5 * 24 * 60 + 1e-9) + 1 == 5_259_601
    assert body["decimated"] is True
    assert body["count"] == len(body["points"]) <= 4000
    start = END - 3652.5 * 86400
    assert body["points"][0] == [start, start + 2 / start]
    last = start + (body["samples"] - 1) * 60.0
    assert body["points"][-1] == [last, last + 2 / last]


def test_parts_split_the_columns() -> None:
    assert queries.m4_parts(1441, 50) == 1
    assert queries.m4_parts(5_259_601, 1000) == 43
    assert queries.m4_parts(5_259_601, 7) == 7  # never more parts than columns


@pytest.mark.django_db
def test_big_series_plan_runs_parts_in_parallel_workers() -> None:
    # The 10-year, 1-minute series: PostgreSQL plans a Gather over a Parallel
    # Append of the parts (the server allows parallel workers by default).
    n, width = 5_259_601, 1000
    sql = queries._m4_sql(compile_expression("t + 2/t").sql, queries.m4_parts(n, width))
    params = {"start": END - 3652.5 * 86400, "step": 60.0, "last": n - 1, "w": width}
    with connection.cursor() as cur:
        cur.execute("SHOW max_parallel_workers_per_gather")
        if int(cur.fetchone()[0]) == 0:
            pytest.skip("this PostgreSQL allows no parallel workers")
        cur.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cur.fetchall())
    assert "Gather" in plan and "Parallel Append" in plan, plan
