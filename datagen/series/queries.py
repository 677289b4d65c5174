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

# JSON has no Infinity/NaN. PostgreSQL raises "value out of range: overflow" for
# overflowing +, -, *, /, ^ and exp, but sinh/cosh/atanh may return +-Infinity
# (and Infinity - Infinity is NaN). Such a series is refused with PostgreSQL's
# own overflow message: in the M4 statement by evaluating exp(1000) for the
# offending column (kept out of constant folding by depending on the row), in
# the raw statement by looking for the words in the JSON text PostgreSQL built.
OVERFLOW_MESSAGE = "value out of range: overflow"


class NonFiniteResult(ArithmeticError):
    """The series has an infinite or NaN value (only possible via sinh/cosh/atanh)."""


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


def _evaluated(expr_sql: str, lo_sql: str, hi_sql: str) -> str:
    """Rows (i, y) for the sample indexes lo..hi, in order of i.

    generate_series is in the target list (a streaming ProjectSet, faster than a
    function scan, which first stores its rows). OFFSET 0 is a fence: without it
    the planner inlines the expression into every place y is used."""
    return f"""
        SELECT i, ({expr_sql}) AS y
        FROM (SELECT i, %(start)s::float8 + i::float8 * %(step)s::float8 AS t
              FROM (SELECT generate_series({lo_sql}, {hi_sql}) AS i) AS g) AS s
        OFFSET 0"""


def _raw_sql(expr_sql: str) -> str:
    # The ProjectSet feeds the aggregate in generate_series order (no join, no
    # sort, no parallel plan), so the points come out ordered by i.
    rows = _evaluated(expr_sql, "0::bigint", "%(last)s::bigint")
    return f"""
SELECT count(*)::bigint,
       '[' || coalesce(string_agg(
           '[' || (%(start)s::float8 + i::float8 * %(step)s::float8)::text
           || ',' || y::text || ']', ','), '') || ']'
FROM ({rows}
) AS p
"""


# A decimated series of more than PARALLEL_CHUNK samples is computed in
# ceil(samples / PARALLEL_CHUNK) parts (at most one per column), so that
# PostgreSQL can hand the parts to parallel workers (Gather over a Parallel
# Append). Smaller series are one part and run in the backend alone.
PARALLEL_CHUNK = 125_000


def m4_parts(samples: int, width: int) -> int:
    """How many parts (UNION ALL branches) the M4 statement of this series has."""
    return max(1, min(width, -(-samples // PARALLEL_CHUNK)))


def _column_lo(b: str) -> str:
    # First sample index of pixel column b (see _m4_sql).
    return f"(({b}) * %(last)s::bigint + %(w)s::bigint - 1) / %(w)s::bigint"


def _column_hi(b: str) -> str:
    # Last sample index of pixel column b: the one before the next column's first.
    return f"CASE WHEN {b} = %(w)s::bigint - 1 THEN %(last)s::bigint ELSE {_column_lo(b + ' + 1')} - 1 END"


def _m4_part(expr_sql: str, part: int, parts: int) -> str:
    """The M4 points (k, yk) of the columns b0 <= b < b1 of one part.

    Parallel-safe by construction: PostgreSQL 15 runs nothing that reads a
    correlated parameter in a worker, so the part is a join, not a LATERAL
    subquery per column. The columns come from a function scan WITH
    ORDINALITY (PostgreSQL knows it is ordered by ord); the nested loop with
    each column's own generate_series keeps that order and, within a column,
    the order of i; the grouped aggregate therefore reads every column's
    samples in order of i, in one pass, without sorting or hashing, and
    array_agg holds them in that order. The subquery with ORDER BY (already
    satisfied, so no sort) is a fence: y is computed once per sample instead of
    once per aggregate."""
    b0 = f"%(w)s::bigint * {part} / {parts}"
    b1 = f"%(w)s::bigint * {part + 1} / {parts}"
    return f"""
    SELECT DISTINCT
           unnest(ARRAY[lo, lo + pmin - 1, lo + pmax - 1, hi]) AS k,
           unnest(ARRAY[ys[1] + guard, ys[pmin], ys[pmax], ys[hi - lo + 1]]) AS yk
    FROM (
        SELECT lo, hi, ys,
               array_position(ys, mn)::bigint AS pmin,
               array_position(ys, mx)::bigint AS pmax,
               CASE WHEN mn = '-Infinity'::float8 OR mx = 'Infinity'::float8 OR mx = 'NaN'::float8
                    THEN exp(1000::float8 + 0::float8 * b) ELSE 0::float8 END AS guard
        FROM (
            SELECT b, {_column_lo("b")} AS lo, {_column_hi("b")} AS hi, ys, mn, mx
            FROM (
                SELECT {b0} + ord - 1 AS b, array_agg(y) AS ys, min(y) AS mn, max(y) AS mx
                FROM (
                    SELECT gb.ord, ({expr_sql}) AS y
                    FROM generate_series({b0}, {b1} - 1) WITH ORDINALITY AS gb(b, ord)
                         CROSS JOIN LATERAL generate_series({_column_lo("gb.b")}, {_column_hi("gb.b")}) AS g(i)
                         CROSS JOIN LATERAL (SELECT %(start)s::float8 + i::float8 * %(step)s::float8 AS t) AS s
                    ORDER BY gb.ord
                ) AS v
                GROUP BY ord
            ) AS a
        ) AS c
    ) AS p"""


def _m4_sql(expr_sql: str, parts: int = 1) -> str:
    # M4 (Jugel et al., VLDB 2014): sample i belongs to pixel column
    # b = floor(w * (t_i - t_0) / (t_last - t_0)) = floor(i*w/(n-1)), the last
    # sample joining column w-1; so column b holds i in [lo_b, hi_b] with
    # lo_b = ceil(b*(n-1)/w), hi_b = ceil((b+1)*(n-1)/w) - 1 (hi = n-1 for the last
    # column). This is the chart's own x mapping when the x axis spans exactly
    # the first to the last sample. For each column the
    # first, last, minimum and maximum sample are kept, deduplicated, in time
    # order (ties: the earliest minimum and the earliest maximum): the values
    # of a column are collected once into an array together with min and max,
    # then array_position finds where the minimum and maximum are.
    # The columns are split into `parts` UNION ALL branches (see _m4_part);
    # the outer aggregate orders the points by k whichever process made them.
    branches = "\n    UNION ALL".join(_m4_part(expr_sql, part, parts) for part in range(parts))
    return f"""
SELECT count(*)::bigint,
       '[' || coalesce(string_agg(
           '[' || (%(start)s::float8 + k::float8 * %(step)s::float8)::text
           || ',' || yk::text || ']', ',' ORDER BY k), '') || ']'
FROM ({branches}
) AS picked
"""


def decimates(samples: int, width: int | None) -> bool:
    """M4 applies: a width is given and the series has more than 4 samples per pixel column."""
    return width is not None and samples > 4 * width


def generate_series_points(
    compiled: Compiled, *, end: float, interval_days: float, dt_hours: float, width: int | None
) -> Series:
    """Run the one statement for this series; raises django.db errors from PostgreSQL."""
    start = end - interval_days * SECONDS_PER_DAY
    step = dt_hours * SECONDS_PER_HOUR
    n = int(sample_count(interval_days, dt_hours))
    decimated = decimates(n, width)
    params: dict[str, object] = {"start": start, "step": step, "last": n - 1}
    if decimated:
        params["w"] = width
        sql = _m4_sql(compiled.sql, m4_parts(n, width))
    else:
        sql = _raw_sql(compiled.sql)
    with connection.cursor() as cur:
        cur.execute(sql, params)
        count, points = cur.fetchone()
    if not decimated and ("Infinity" in points or "NaN" in points):
        raise NonFiniteResult(OVERFLOW_MESSAGE)
    return Series(start=start, end=end, step=step, samples=n, count=int(count), decimated=decimated, points_json=points)
