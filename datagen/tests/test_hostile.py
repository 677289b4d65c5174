"""Hostile text is rejected before any query reaches PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from series.expressions import ExpressionError, compile_expression

HOSTILE = [
    # SQL fragments, statements, comments
    "1; DROP TABLE admin_function",
    "t); SELECT pg_sleep(10); --",
    "t -- comment",
    "t /* comment */",
    "t */ 1",
    "t OR 1=1",
    "t || 'x'",
    "1 = 1",
    "t < 2",
    "t AND t",
    "select t",
    "(SELECT 1)",
    "t UNION SELECT 1",
    # casts and quotes
    "t::text",
    "sin(t)::float4",
    "CAST(t AS text)",
    "'1'",
    '"t"',
    "E'\\x41'",
    'U&"\\0074"',
    "$$t$$",
    "$1",
    "%s",
    "%(start)s",
    "t\x00",
    # functions and names that are not whitelisted
    "pg_sleep(10)",
    "sin(pg_sleep(10))",
    "pg_read_file('/etc/passwd')",
    "current_user",
    "version()",
    "pg_catalog.sin(t)",
    "information_schema.tables",
    "admin_function",
    "auth_user",
    "generate_series(1, 10)",
    "random()",
    "now()",
    "i",
    "y_raw",
    "start",
    "__import__('os').system('id')",
    "eval('t')",
    "lambda: 1",
    # PostgreSQL operators that are not in the language
    "@t",
    "|/t",
    "||/t",
    "t!",
    "~t",
    "2 # 3",
    "t & 1",
    "t % 2",
    "t[1]",
    "array[t]",
    "t.t",
    # enormous numbers
    "1e400",
    "9" * 400,
    "t * 1e999999999",
    # Unicode look-alikes
    "\uff54",  # fullwidth t
    "t\uff0b1",  # fullwidth plus
    "s\u0456n(t)",  # Cyrillic i
    "\u0435",  # Cyrillic e
    "t\u00a0+ 1",  # no-break space
    "t\u200b",  # zero-width space
    "\u0663",  # Arabic-Indic digit three
    "t\u00b2",  # superscript two
    "t \u2212 1",  # minus sign
    "t \u00f7 2",  # division sign
    "\U0001d461",  # mathematical italic t
    # depth and length
    "(" * 10_000 + "t" + ")" * 10_000,
    "-" * 10_000 + "t",
    "t" + "+t" * 5_000,
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_rejected_without_a_query(api_nodb, text: str) -> None:
    with pytest.raises(ExpressionError):
        compile_expression(text)
    body = {"expression": text, "interval": 1, "dt": 1, "end": 1764374400.5}
    with CaptureQueriesContext(connection) as queries:
        r = api_nodb.post("/api/v1/points", body)
        v = api_nodb.post("/api/v1/validate", {"expression": text})
    assert len(queries) == 0
    for response in (r, v):
        assert response.status_code == 400, response.content
        errors = response.json()["errors"]
        assert len(errors) == 1
        assert errors[0]["field"] == "expression"
        assert errors[0]["code"] in {
            "syntax",
            "unknown_name",
            "unknown_function",
            "number_out_of_range",
            "too_long",
            "too_deep",
        }
