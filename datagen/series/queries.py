"""The one SQL statement that produces a series (raw or M4-decimated).

Sampling rule (see README): ``start = end - interval*86400``; ``step = dt*3600``;
``t_i = start + i*step`` for ``i = 0 .. n-1`` with
``n = floor(interval*24/dt + 1e-9) + 1``.

Both statements return one row ``(returned_count, points_json_text)``; the
points list is built by PostgreSQL as JSON text and passed through unchanged.

The compiled expression is embedded as SQL text produced by
:mod:`series.expressions` (whitelisted tokens and float literals it formatted
itself); every number that comes from the request (start, step, n, width) is a
bound parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.db import connection

from .expressions import Compiled

SECONDS_PER_DAY = 86400.0
SECONDS_PER_HOUR = 3600.0
SAMPLE_EPSILON = 1e-9

# The value of f(t) is checked once per sample: PostgreSQL raises
# "value out of range: overflow" for overflowing +, -, *, /, ^ and exp, but
# sinh/cosh/atanh may return +-Infinity and Infinity - Infinity is NaN. JSON has
# no such numbers, so a non-finite final value raises the same error PostgreSQL
# uses for overflow (exp of a number > 709.78, kept out of constant folding by
# depending on the row).
_Y_CHECKED = (
    "CASE WHEN y_raw IN ('Infinity'::float8, '-Infinity'::float8, 'NaN'::float8) "
    "THEN exp(1000::float8 + 0::float8 * i) ELSE y_raw END"
)


def sample_count(interval_days: float, dt_hours: float) -> float:
    """Number of samples (as a float: it may be huge or infinite for absurd input)."""
    ratio = interval_days * 24.0 / dt_hours
    if not math.isfinite(ratio):
        return math.inf
    return math.floor(ratio + SAMPLE_EPSILON) + 1


@dataclass(frozen=True)
class Series:
    start: float
    end: float
    step: float
    samples: int
    count: int
    decimated: bool
    points_json: str


def _evaluated(expr_sql: str, index_source: str) -> str:
    """Rows (i, t, y) for the sample indexes produced by ``index_source`` (a FROM item
    with one bigint column i). The expression is evaluated once per row: OFFSET 0
    keeps the planner from inlining it into every place y is used."""
    return f"""
        SELECT i, t, {_Y_CHECKED} AS y
        FROM (
            SELECT i, t, ({expr_sql}) AS y_raw
            FROM (SELECT i, %(start)s::float8 + i::float8 * %(step)s::float8 AS t
                  FROM {index_source}) AS s
            OFFSET 0
        ) AS v"""


def _raw_sql(expr_sql: str) -> str:
    # A plain function scan feeds the aggregate in generate_series order (no
    # join, and PostgreSQL has no parallel plan for a function scan), so the
    # points come out ordered by i without a sort.
    rows = _evaluated(expr_sql, "generate_series(0::bigint, %(last)s::bigint) AS g(i)")
    return f"""
SELECT count(*)::bigint,
       '[' || coalesce(string_agg('[' || t::text || ',' || y::text || ']', ','), '') || ']'
FROM ({rows}
) AS p
"""


def _m4_sql(expr_sql: str) -> str:
    # M4 (Jugel et al., VLDB 2014): the samples are split into `width` columns,
    # column b holding i in [lo_b, hi_b] with lo_b = ceil(b*n/w) and
    # hi_b = ceil((b+1)*n/w) - 1 (so b = floor(i*w/n)); for each column the
    # first, last, minimum and maximum sample are kept, deduplicated, in time
    # order. Each column is aggregated by its own small generate_series (a
    # correlated LATERAL), which streams without materialising the series.
    # min/max carry their index in a 2-element array (ties: earliest minimum,
    # latest maximum); first and last are f evaluated again at lo_b and hi_b.
    in_column = _evaluated(expr_sql, "generate_series(c.lo, c.hi) AS g(i)")
    ends = _evaluated(expr_sql, "(VALUES (c.lo), (c.hi)) AS g(i)")
    return f"""
SELECT count(*)::bigint,
       '[' || coalesce(string_agg('[' || (%(start)s::float8 + k::float8 * %(step)s::float8)::text
                                  || ',' || yk::text || ']', ',' ORDER BY k), '') || ']'
FROM (
    SELECT DISTINCT k, yk
    FROM (SELECT b, (b * %(n)s::bigint + %(w)s::bigint - 1) / %(w)s::bigint AS lo,
                    ((b + 1) * %(n)s::bigint + %(w)s::bigint - 1) / %(w)s::bigint - 1 AS hi
          FROM generate_series(0::bigint, %(w)s::bigint - 1) AS gb(b)) AS c,
    LATERAL (
        SELECT min(ARRAY[y, i::float8]) AS mn, max(ARRAY[y, i::float8]) AS mx
        FROM ({in_column}
        ) AS p
    ) AS a,
    LATERAL (
        SELECT i AS k, y AS yk FROM ({ends}
        ) AS e
        UNION ALL SELECT a.mn[2]::bigint, a.mn[1]
        UNION ALL SELECT a.mx[2]::bigint, a.mx[1]
    ) AS four
) AS picked
"""


def generate_series_points(compiled: Compiled, *, end: float, interval_days: float,
                           dt_hours: float, width: int | None) -> Series:
    """Run the one statement for this series; raises django.db errors from PostgreSQL."""
    start = end - interval_days * SECONDS_PER_DAY
    step = dt_hours * SECONDS_PER_HOUR
    n = int(sample_count(interval_days, dt_hours))
    decimated = width is not None and n > 4 * width
    params: dict[str, object] = {"start": start, "step": step, "last": n - 1}
    if decimated:
        params.update(n=n, w=width)
        sql = _m4_sql(compiled.sql)
    else:
        sql = _raw_sql(compiled.sql)
    with connection.cursor() as cur:
        cur.execute(sql, params)
        count, points = cur.fetchone()
    return Series(start=start, end=end, step=step, samples=n, count=int(count),
                  decimated=decimated, points_json=points)
