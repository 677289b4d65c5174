"""Shared fixtures: a JSON client against the real PostgreSQL (pytest-django's test DB)."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import pytest
from django.test import Client

from series.expressions import Binary, Call, Node, Num, Unary, Var


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """These tests create and drop their own database, which datagen's least-privilege
    role (DATAGEN_POSTGRES_USER) may not: they connect as the cluster's admin role.
    The system tests (tests/test_security_db.py) run datagen as its own role.
    With TEST_SLOT (and no DATAGEN_TEST_DB), the slot's own database: suites of two
    slots never collide."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    database["USER"] = os.environ.get("POSTGRES_USER", "").strip() or "postgres"
    database["PASSWORD"] = os.environ.get("POSTGRES_PASSWORD", "")
    slot = os.environ.get("TEST_SLOT", "").strip()
    if slot and not os.environ.get("DATAGEN_TEST_DB", "").strip():
        database["TEST"]["NAME"] = f"test_datagen_slot{slot}"


class Api:
    def __init__(self) -> None:
        self.client = Client()

    def post(self, path: str, body: Any, content_type: str = "application/json"):
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        return self.client.post(path, data, content_type=content_type)

    def points(self, **body: Any):
        return self.post("/api/v1/points", body)


@pytest.fixture
def api(transactional_db: None) -> Api:
    # transactional_db: no wrapping transaction, so a PostgreSQL error in one
    # request does not poison the next one (the service runs in autocommit).
    return Api()


@pytest.fixture
def api_nodb(db: None) -> Api:
    # Tests with this fixture assert, with CaptureQueriesContext, that no query ran.
    return Api()


def _sign(x: float) -> float:
    return 0.0 if x == 0 else math.copysign(1.0, x)


PY_FUNCTIONS = {
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "asinh": math.asinh,
    "acosh": math.acosh,
    "atanh": math.atanh,
    "sqrt": math.sqrt,
    "cbrt": math.cbrt,
    "exp": math.exp,
    "ln": math.log,
    "log": math.log10,
    "log10": math.log10,
    "pow": math.pow,
    "abs": math.fabs,
    "floor": lambda x: float(math.floor(x)),
    "ceil": lambda x: float(math.ceil(x)),
    "round": lambda x: float(round(x)),
    "sign": _sign,
    "min": min,
    "max": max,
}


def py_eval(node: Node, t: float) -> float:
    """Evaluate a tree with Python's math, independently of the SQL compiler.

    Raises ArithmeticError/ValueError where the mathematics is undefined and
    OverflowError when any intermediate value is not finite.
    """
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Var):
        return t
    if isinstance(node, Unary):
        v = -py_eval(node.operand, t)
    elif isinstance(node, Binary):
        a, b = py_eval(node.left, t), py_eval(node.right, t)
        if node.op == "+":
            v = a + b
        elif node.op == "-":
            v = a - b
        elif node.op == "*":
            v = a * b
        elif node.op == "/":
            v = a / b
        else:
            v = math.pow(a, b)
    else:
        assert isinstance(node, Call)
        v = PY_FUNCTIONS[node.name](*(py_eval(a, t) for a in node.args))
    if not math.isfinite(v):
        raise OverflowError("not finite")
    return v
