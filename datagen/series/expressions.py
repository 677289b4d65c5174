"""The function language: a whitelist parser and a compiler to PostgreSQL SQL.

User text never reaches SQL directly. It is tokenised character by character
(ASCII only), parsed by a recursive-descent parser into a small tree of
:class:`Num`, :class:`Var`, :class:`Unary`, :class:`Binary` and :class:`Call`
nodes, and that tree is compiled to SQL made only of

* float literals that this module formats itself with ``repr(float)`` and casts
  to ``float8`` (so every constant is double precision and ``2/t`` is never
  integer division),
* the column name ``t`` (double precision, unix seconds),
* the operators ``+ - * / ^`` and parentheses,
* the names of whitelisted PostgreSQL functions from :data:`FUNCTIONS`.

Grammar (``^`` and ``**`` are right-associative and bind tighter than unary
minus, so ``-t^2`` is ``-(t^2)`` and ``2^-1`` is ``0.5``)::

    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := ("-" | "+") unary | power
    power   := atom (("^" | "**") unary)?
    atom    := NUMBER | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"
    NUMBER  := digits ["." digits*] [("e"|"E") ["+"|"-"] digits] | "." digits [exponent]
    NAME    := [A-Za-z_][A-Za-z0-9_]*

Names are case-sensitive. Variables/constants: ``t``, ``pi``, ``e``.

Limits: at most ``max_length`` characters (default 1000) and a nesting depth
of at most ``max_depth`` (default 64). Depth is the height of the parse: every
operator, function call, unary sign and pair of parentheses adds one level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

DEFAULT_MAX_LENGTH = 1000
DEFAULT_MAX_DEPTH = 64

# name -> (SQL template, minimum arguments, maximum arguments or None, description)
# Templates use {0}, {1}, ... for compiled arguments; "{*}" joins all arguments with ", ".
FUNCTIONS: dict[str, tuple[str, int, int | None, str]] = {
    "sin": ("sin({0})", 1, 1, "sine (radians)"),
    "cos": ("cos({0})", 1, 1, "cosine (radians)"),
    "tan": ("tan({0})", 1, 1, "tangent (radians)"),
    "asin": ("asin({0})", 1, 1, "arc sine, argument in [-1, 1]"),
    "acos": ("acos({0})", 1, 1, "arc cosine, argument in [-1, 1]"),
    "atan": ("atan({0})", 1, 1, "arc tangent"),
    "atan2": ("atan2({0}, {1})", 2, 2, "atan2(y, x): angle of the point (x, y)"),
    "sinh": ("sinh({0})", 1, 1, "hyperbolic sine"),
    "cosh": ("cosh({0})", 1, 1, "hyperbolic cosine"),
    "tanh": ("tanh({0})", 1, 1, "hyperbolic tangent"),
    "asinh": ("asinh({0})", 1, 1, "inverse hyperbolic sine"),
    "acosh": ("acosh({0})", 1, 1, "inverse hyperbolic cosine, argument >= 1"),
    "atanh": ("atanh({0})", 1, 1, "inverse hyperbolic tangent, argument in (-1, 1)"),
    "sqrt": ("sqrt({0})", 1, 1, "square root, argument >= 0"),
    "cbrt": ("cbrt({0})", 1, 1, "cube root"),
    "exp": ("exp({0})", 1, 1, "e to the power x"),
    "ln": ("ln({0})", 1, 1, "natural logarithm, argument > 0"),
    "log": ("log({0})", 1, 1, "base-10 logarithm (as on a calculator), argument > 0"),
    "log10": ("log({0})", 1, 1, "base-10 logarithm, argument > 0"),
    "pow": ("({0} ^ {1})", 2, 2, "pow(x, y) = x ^ y"),
    "abs": ("abs({0})", 1, 1, "absolute value"),
    "floor": ("floor({0})", 1, 1, "largest integer <= x"),
    "ceil": ("ceil({0})", 1, 1, "smallest integer >= x"),
    "round": ("round({0})", 1, 1, "nearest integer, ties to even"),
    "sign": ("sign({0})", 1, 1, "-1, 0 or 1"),
    "min": ("least({*})", 2, None, "smallest of two or more arguments"),
    "max": ("greatest({*})", 2, None, "largest of two or more arguments"),
}

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
VARIABLE = "t"

_WHITESPACE = frozenset(" \t\r\n")
_DIGITS = frozenset("0123456789")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | _DIGITS
_SINGLE = frozenset("+-/^(),")

# What a syntax error says was expected: the stable names of its ``expected`` parameter, and their words.
EXPECTED: dict[str, str] = {
    "number": "a number",
    "variable": "t",
    "constant": "a constant",
    "function": "a function",
    "open_parenthesis": "'('",
    "close_parenthesis": "')'",
    "comma": "','",
    "operator": "an operator",
    "end": "the end of the expression",
}


class ExpressionError(ValueError):
    """The text is not a valid expression. ``code`` is machine-readable."""

    def __init__(self, code: str, message: str, position: int | None = None, **params: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.position = position
        # The message's parameters as data (the README's "Error codes"): a client words it itself.
        self.params: dict[str, object] = {**params, **({} if position is None else {"position": position})}

    def as_dict(self, field: str = "expression") -> dict[str, object]:
        d: dict[str, object] = {"field": field, "code": self.code, "message": self.message, "params": self.params}
        if self.position is not None:
            d["position"] = self.position
        return d


# ---------------------------------------------------------------- tree nodes


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Var:
    name: str  # always "t"


@dataclass(frozen=True)
class Unary:
    op: str  # "-" (unary plus is dropped by the parser)
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str  # one of + - * / ^
    left: Node
    right: Node


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]


Node = Union[Num, Var, Unary, Binary, Call]  # noqa: UP007 - used at runtime


@dataclass(frozen=True)
class Compiled:
    """A compiled expression: ``sql`` is a float8 SQL expression over the column ``t``."""

    expression: str
    tree: Node
    sql: str
    depth: int


# ---------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class _Tok:
    kind: str  # "num", "name", "op", "end"
    text: str
    pos: int
    value: float = 0.0


def _describe(ch: str) -> str:
    if ch.isprintable() and ch.isascii():
        return repr(ch)
    return f"{ch!r} (U+{ord(ch):04X})"


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _WHITESPACE:
            i += 1
            continue
        start = i
        if ch in _DIGITS or (ch == "." and i + 1 < n and text[i + 1] in _DIGITS):
            while i < n and text[i] in _DIGITS:
                i += 1
            if i < n and text[i] == ".":
                i += 1
                while i < n and text[i] in _DIGITS:
                    i += 1
            if i < n and text[i] in "eE":
                j = i + 1
                if j < n and text[j] in "+-":
                    j += 1
                if j < n and text[j] in _DIGITS:
                    while j < n and text[j] in _DIGITS:
                        j += 1
                    i = j
            literal = text[start:i]
            value = float(literal)
            if not math.isfinite(value):
                raise ExpressionError(
                    "number_out_of_range",
                    f"number {literal[:40]!s} at position {start} is too large for double precision",
                    start,
                    number=literal[:40],
                )
            toks.append(_Tok("num", literal, start, value))
            continue
        if ch in _NAME_START:
            while i < n and text[i] in _NAME_CHARS:
                i += 1
            toks.append(_Tok("name", text[start:i], start))
            continue
        if ch == "*":
            if i + 1 < n and text[i + 1] == "*":
                toks.append(_Tok("op", "^", start))
                i += 2
            else:
                toks.append(_Tok("op", "*", start))
                i += 1
            continue
        if ch in _SINGLE:
            toks.append(_Tok("op", ch, start))
            i += 1
            continue
        raise ExpressionError(
            "syntax",
            f"unexpected character {_describe(ch)} at position {start}",
            start,
            kind="unexpected_character",
            character=ch,
        )
    toks.append(_Tok("end", "", n))
    return toks


# ---------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str, max_depth: int) -> None:
        self.toks = _tokenize(text)
        self.i = 0
        self.max_depth = max_depth
        self.level = 0

    # helpers
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def _enter(self, pos: int) -> None:
        self.level += 1
        if self.level > self.max_depth:
            raise ExpressionError(
                "too_deep",
                f"expression is nested too deeply at position {pos} (the limit is {self.max_depth} levels)",
                pos,
                limit=self.max_depth,
            )

    def _leave(self) -> None:
        self.level -= 1

    def _unexpected(self, *expected: str) -> ExpressionError:
        """A syntax error at the current token; ``expected``: names from :data:`EXPECTED`."""
        tok = self.tok
        words = [EXPECTED[name] for name in expected]
        wanted = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
        if tok.kind == "end":
            return ExpressionError(
                "syntax",
                f"unexpected end of expression at position {tok.pos}, expected {wanted}",
                tok.pos,
                kind="unexpected_end",
                expected=list(expected),
            )
        return ExpressionError(
            "syntax",
            f"unexpected {tok.text!r} at position {tok.pos}, expected {wanted}",
            tok.pos,
            kind="unexpected_token",
            token=tok.text,
            expected=list(expected),
        )

    def _is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    # grammar
    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise ExpressionError("syntax", "the expression is empty", 0, kind="empty")
        node = self.expr()
        if self.tok.kind != "end":
            raise self._unexpected("operator", "end")
        return node

    def expr(self) -> Node:
        node = self.term()
        while self._is_op("+", "-"):
            op = self.tok
            self.i += 1
            right = self.term()
            node = Binary(op.text, node, right)
        # binary chains loop instead of recursing; parse() checks their height
        return node

    def term(self) -> Node:
        node = self.unary()
        while self._is_op("*", "/"):
            op = self.tok
            self.i += 1
            right = self.unary()
            node = Binary(op.text, node, right)
        return node

    def unary(self) -> Node:
        if self._is_op("-", "+"):
            op = self.tok
            self.i += 1
            self._enter(op.pos)
            operand = self.unary()
            self._leave()
            return Unary("-", operand) if op.text == "-" else operand
        return self.power()

    def power(self) -> Node:
        base = self.atom()
        if self._is_op("^"):
            op = self.tok
            self.i += 1
            self._enter(op.pos)
            exponent = self.unary()
            self._leave()
            return Binary("^", base, exponent)
        return base

    def atom(self) -> Node:
        tok = self.tok
        if tok.kind == "num":
            self.i += 1
            return Num(tok.value)
        if tok.kind == "name":
            self.i += 1
            name = tok.text
            if self._is_op("("):
                if name not in FUNCTIONS:
                    raise ExpressionError(
                        "unknown_function",
                        f"unknown function {name[:40]!r} at position {tok.pos}",
                        tok.pos,
                        name=name[:40],
                    )
                return self.call(name, tok.pos)
            if name == VARIABLE:
                return Var(name)
            if name in CONSTANTS:
                return Num(CONSTANTS[name])
            if name in FUNCTIONS:
                raise ExpressionError(
                    "syntax",
                    f"function {name!r} at position {tok.pos} needs its arguments in parentheses",
                    tok.pos,
                    kind="needs_parentheses",
                    function=name,
                )
            raise ExpressionError(
                "unknown_name",
                f"unknown name {name[:40]!r} at position {tok.pos}; the variable is t and the constants are pi and e",
                tok.pos,
                name=name[:40],
            )
        if self._is_op("("):
            self.i += 1
            self._enter(tok.pos)
            node = self.expr()
            if not self._is_op(")"):
                raise self._unexpected("close_parenthesis")
            self.i += 1
            self._leave()
            return node
        raise self._unexpected("number", "variable", "constant", "function", "open_parenthesis")

    def call(self, name: str, pos: int) -> Node:
        self.i += 1  # "("
        self._enter(pos)
        args: list[Node] = []
        if not self._is_op(")"):
            args.append(self.expr())
            while self._is_op(","):
                self.i += 1
                args.append(self.expr())
        if not self._is_op(")"):
            raise self._unexpected("comma", "close_parenthesis")
        self.i += 1
        self._leave()
        _, lo, hi, _ = FUNCTIONS[name]
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = str(lo) if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise ExpressionError(
                "wrong_arguments",
                f"function {name!r} at position {pos} takes {want} argument"
                f"{'' if want == '1' else 's'}, got {len(args)}",
                pos,
                function=name,
                min=lo,
                max=hi,
                got=len(args),
            )
        return Call(name, tuple(args))


# ---------------------------------------------------------------- compiler


def _literal(value: float) -> str:
    # repr() of a finite float is the shortest text that round-trips; it is a
    # valid SQL numeric literal (digits, ".", "e", sign of exponent).
    # Numbers in the text are unsigned and the constants positive, so the
    # value is finite and >= 0; anything else is a bug, not user input.
    if not (math.isfinite(value) and value >= 0.0):
        raise AssertionError(value)
    return f"{value!r}::float8"


def _height(node: Node) -> int:
    # iterative, so that a long chain cannot exhaust Python's stack
    best = 0
    stack: list[tuple[Node, int]] = [(node, 1)]
    while stack:
        cur, h = stack.pop()
        best = max(best, h)
        if isinstance(cur, Unary):
            stack.append((cur.operand, h + 1))
        elif isinstance(cur, Binary):
            stack.append((cur.left, h + 1))
            stack.append((cur.right, h + 1))
        elif isinstance(cur, Call):
            stack.extend((a, h + 1) for a in cur.args)
    return best


def to_sql(node: Node) -> str:
    """Compile a parsed tree to a float8 SQL expression over the column ``t``."""
    if isinstance(node, Num):
        return _literal(node.value)
    if isinstance(node, Var):
        return "t"
    if isinstance(node, Unary):
        return f"(-{to_sql(node.operand)})"
    if isinstance(node, Binary):
        if node.op not in ("+", "-", "*", "/", "^"):
            raise AssertionError(node.op)
        return f"({to_sql(node.left)} {node.op} {to_sql(node.right)})"
    if isinstance(node, Call):
        template = FUNCTIONS[node.name][0]
        args = [to_sql(a) for a in node.args]
        if "{*}" in template:
            return template.replace("{*}", ", ".join(args))
        return template.format(*args)
    raise AssertionError(type(node))


def parse(text: str, max_length: int = DEFAULT_MAX_LENGTH, max_depth: int = DEFAULT_MAX_DEPTH) -> Node:
    """Parse ``text`` into a tree, or raise :class:`ExpressionError`."""
    if not isinstance(text, str):
        raise ExpressionError("invalid", "the expression must be a string", type="string")
    if len(text) > max_length:
        raise ExpressionError(
            "too_long",
            f"the expression is {len(text)} characters long; the limit is {max_length}",
            length=len(text),
            limit=max_length,
        )
    tree = _Parser(text, max_depth).parse()
    height = _height(tree)
    if height > max_depth:
        raise ExpressionError(
            "too_deep",
            f"the expression is nested {height} levels deep; the limit is {max_depth}",
            depth=height,
            limit=max_depth,
        )
    return tree


def compile_expression(text: str, max_length: int = DEFAULT_MAX_LENGTH, max_depth: int = DEFAULT_MAX_DEPTH) -> Compiled:
    """Parse and compile ``text``; raise :class:`ExpressionError` when it is invalid."""
    tree = parse(text, max_length=max_length, max_depth=max_depth)
    return Compiled(expression=text, tree=tree, sql=to_sql(tree), depth=_height(tree))
