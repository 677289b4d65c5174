"""The parser/compiler alone (no database)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from series.expressions import (
    FUNCTIONS,
    Compiled,
    ExpressionError,
    compile_expression,
    parse,
)

SQL_FUNCTIONS = [
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "atan2",
    "sinh",
    "cosh",
    "tanh",
    "asinh",
    "acosh",
    "atanh",
    "sqrt",
    "cbrt",
    "exp",
    "ln",
    "log",
    "abs",
    "floor",
    "ceil",
    "round",
    "sign",
    "least",
    "greatest",
]
SQL_TOKEN = re.compile(
    r"\s+|t\b|[0-9]+(\.[0-9]*)?(e[+-]?[0-9]+)?::float8|[-+*/^(),]|(" + "|".join(SQL_FUNCTIONS) + r")\b"
)


def assert_whitelisted_sql(sql: str) -> None:
    rest = SQL_TOKEN.sub("", sql)
    assert rest == "", f"non-whitelisted SQL left: {rest!r} in {sql!r}"
    for bad in ("--", "/*", ";", "'", '"', "%", "$", "\\"):
        assert bad not in sql


@pytest.mark.parametrize(
    "text, sql",
    [
        ("t + 2/t", "(t + (2.0::float8 / t))"),
        ("sin(t)", "sin(t)"),
        ("t*t + 2/t", "((t * t) + (2.0::float8 / t))"),
        ("-t^2", "(-(t ^ 2.0::float8))"),
        ("2^-1", "(2.0::float8 ^ (-1.0::float8))"),
        ("2**3**2", "(2.0::float8 ^ (3.0::float8 ^ 2.0::float8))"),
        ("t - -t", "(t - (-t))"),
        ("max(t, 1, 2)", "greatest(t, 1.0::float8, 2.0::float8)"),
        ("log(t)", "log(t)"),
        ("pi", f"{3.141592653589793!r}::float8"),
        (".5e-3 + 1.", "(0.0005::float8 + 1.0::float8)"),
    ],
)
def test_compiles(text: str, sql: str) -> None:
    compiled = compile_expression(text)
    assert compiled.sql == sql
    assert compiled.expression == text
    assert_whitelisted_sql(compiled.sql)


@pytest.mark.parametrize(
    "text, code, position",
    [
        ("t + )", "syntax", 4),
        ("", "syntax", 0),
        ("   ", "syntax", 0),
        ("t +", "syntax", 3),
        ("(t", "syntax", 2),
        ("t)", "syntax", 1),
        ("2 t", "syntax", 2),
        ("t $ 1", "syntax", 2),
        ("x + 1", "unknown_name", 0),
        ("T", "unknown_name", 0),
        ("1 + foo(t)", "unknown_function", 4),
        ("sin", "syntax", 0),
        ("sin()", "wrong_arguments", 0),
        ("atan2(t)", "wrong_arguments", 0),
        ("max(t)", "wrong_arguments", 0),
        ("1e999", "number_out_of_range", 0),
        ("t+" + "9" * 400, "number_out_of_range", 2),
    ],
)
def test_rejects(text: str, code: str, position: int) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    assert info.value.code == code
    assert info.value.position == position
    if text.strip():
        assert f"position {position}" in info.value.message


def test_length_limit() -> None:
    compile_expression("t" + "+t" * 20, max_length=41)
    with pytest.raises(ExpressionError) as info:
        compile_expression("t" + "+t" * 20, max_length=40)
    assert info.value.code == "too_long"


def test_depth_limit_counts_parentheses_calls_and_operators() -> None:
    compile_expression("(" * 10 + "t" + ")" * 10, max_depth=10)
    for text in ["(" * 11 + "t" + ")" * 11, "-" * 11 + "t", "sin(" * 11 + "t" + ")" * 11, "t" + "+t" * 11]:
        with pytest.raises(ExpressionError) as info:
            compile_expression(text, max_depth=10)
        assert info.value.code == "too_deep", text


def test_ten_thousand_parentheses_do_not_recurse() -> None:
    text = "(" * 10_000 + "t" + ")" * 10_000
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    assert info.value.code == "too_long"
    with pytest.raises(ExpressionError) as info:  # even with the length limit lifted
        compile_expression(text, max_length=10**6)
    assert info.value.code == "too_deep"


def test_every_function_compiles_to_whitelisted_sql() -> None:
    for name, (_, lo, _hi, _doc) in FUNCTIONS.items():
        args = ", ".join(["t"] * lo)
        assert_whitelisted_sql(compile_expression(f"{name}({args})").sql)


@settings(max_examples=600, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_compiles_or_is_a_validation_error(text: str) -> None:
    try:
        compiled = compile_expression(text)
    except ExpressionError as exc:
        assert exc.code and exc.message
        assert exc.position is None or 0 <= exc.position <= len(text)
        return
    assert isinstance(compiled, Compiled)
    assert_whitelisted_sql(compiled.sql)


ALPHABET = "t+-*/^().,e0123456789 pisnctaqrxlgbfo_;'\"%$#"


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=80))
def test_near_miss_text_compiles_or_is_a_validation_error(text: str) -> None:
    try:
        compiled = compile_expression(text)
    except ExpressionError:
        return
    assert_whitelisted_sql(compiled.sql)
    assert parse(text) == compiled.tree
