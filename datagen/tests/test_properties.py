"""Property-based: compiled expressions evaluated by PostgreSQL agree with Python's math."""

from __future__ import annotations

import math

import pytest
from django.db import DatabaseError, connection
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from series.expressions import FUNCTIONS, Binary, Call, Node, Num, Unary, Var, compile_expression

from .conftest import py_eval

LEAVES = st.one_of(
    st.just(Var("t")),
    st.just(Var("t")),
    st.integers(0, 100).map(lambda n: Num(float(n))),
    st.floats(0, 1e6, allow_nan=False, allow_infinity=False).map(Num),
    st.floats(0, 1, allow_nan=False, allow_infinity=False).map(Num),
    st.sampled_from([Num(math.pi), Num(math.e)]),
)


def _calls(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    def build(name: str) -> st.SearchStrategy[Node]:
        lo = FUNCTIONS[name][1]
        return (
            st.lists(children, min_size=lo, max_size=lo if lo == 1 else 3).map(lambda args: Call(name, tuple(args)))
            if FUNCTIONS[name][2] is None
            else st.lists(children, min_size=lo, max_size=lo).map(lambda args: Call(name, tuple(args)))
        )

    return st.sampled_from(sorted(FUNCTIONS)).flatmap(build)


TREES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        children.map(lambda c: Unary("-", c)),
        st.tuples(st.sampled_from("+-*/^"), children, children).map(lambda x: Binary(*x)),
        _calls(children),
    ),
    max_leaves=10,
)

T_VALUES = st.one_of(
    st.floats(1.6e9, 1.9e9),  # unix seconds, as the service samples them
    st.floats(-10, 10, allow_nan=False),
    st.sampled_from([0.0, 0.5, 1.0, -1.0, 1764374400.5]),
)


def to_text(node: Node) -> str:
    if isinstance(node, Num):
        return repr(node.value)
    if isinstance(node, Var):
        return "t"
    if isinstance(node, Unary):
        return f"(-{to_text(node.operand)})"
    if isinstance(node, Binary):
        return f"({to_text(node.left)} {node.op} {to_text(node.right)})"
    return f"{node.name}({', '.join(to_text(a) for a in node.args)})"


def pg_eval(sql: str, t: float) -> float:
    with connection.cursor() as cur:
        cur.execute(f"SELECT ({sql}) FROM (SELECT %s::float8 AS t) AS s", [t])
        return cur.fetchone()[0]


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(tree=TREES, ts=st.lists(T_VALUES, min_size=1, max_size=3))
def test_postgres_agrees_with_python_math(transactional_db: None, tree: Node, ts: list[float]) -> None:
    text = to_text(tree)
    compiled = compile_expression(text)
    assert compiled.tree == tree  # the text round-trips to the same tree
    for t in ts:
        try:
            expected = py_eval(tree, t)
        except (ArithmeticError, ValueError):
            expected = None
        try:
            got = pg_eval(compiled.sql, t)
        except DatabaseError as exc:
            # PostgreSQL raises where Python saturates: underflow to zero (and
            # overflow, already None above). Both are SQLSTATE 22003.
            assert getattr(exc.__cause__, "pgcode", None)[:2] == "22", exc
            if expected is not None:
                assert "underflow" in str(exc) or "out of range" in str(exc), (text, t, exc)
            event("PostgreSQL raised")
            continue
        if expected is None:
            event("Python raised, PostgreSQL did not")
            continue  # e.g. 1/cosh(1000): PostgreSQL's cosh saturates to Infinity
        event("compared")
        assert math.isfinite(got)
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=0.0), (text, t, got, expected)


@pytest.mark.parametrize("text", ["t + 2/t", "sin(t)", "t*t + 2/t", "2/t"])
def test_two_over_t_is_not_integer_division(transactional_db: None, text: str) -> None:
    compiled = compile_expression(text)
    for t in (3.0, 7.0, 1764374400.0):
        got = pg_eval(compiled.sql, t)
        assert got == py_eval(compiled.tree, t)
