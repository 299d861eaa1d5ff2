"""A small subset of CEL, enough for Dapr's routing rules and circuit-breaker trips.

Supported: literals (strings, numbers, booleans, null, lists), member and index access,
``! - * / % + - < <= > >= == != in && ||``, ``has(a.b)``, ``int() uint() double()
string() size()`` and the methods ``startsWith endsWith contains matches size``.
Anything else fails when the expression is compiled, so a bad rule is reported when
the Subscription or Resiliency is loaded, not when a message arrives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

__all__ = ["Expression", "compile_expression"]

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?u?)
    |(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<op>&&|\|\||==|!=|<=|>=|[!<>+\-*/%().,\[\]?:])
    |(?P<id>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)

_Missing = object()
Node = tuple[Any, ...]


def _tokenize(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(
                f"CEL expression {text!r}: unexpected character at {pos}: {text[pos]!r}"
            )
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("eof", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if value is not None and tok[1] != value:
            raise ValueError(f"CEL expression {self.text!r}: expected {value!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.ternary()
        if self.peek()[0] != "eof":
            raise ValueError(f"CEL expression {self.text!r}: unexpected {self.peek()[1]!r}")
        return node

    def ternary(self) -> Node:
        cond = self.binary(0)
        if self.peek()[1] == "?":
            self.take()
            a = self.ternary()
            self.take(":")
            b = self.ternary()
            return ("?", cond, a, b)
        return cond

    _LEVELS: tuple[tuple[str, ...], ...] = (
        ("||",),
        ("&&",),
        ("==", "!=", "<", "<=", ">", ">=", "in"),
        ("+", "-"),
        ("*", "/", "%"),
    )

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        while self.peek()[1] in self._LEVELS[level] and self.peek()[0] in {"op", "id"}:
            op = self.take()[1]
            node = (op, node, self.binary(level + 1))
        return node

    def unary(self) -> Node:
        if self.peek()[1] in {"!", "-"}:
            op = self.take()[1]
            return ("u" + op, self.unary())
        return self.postfix(self.primary())

    def args(self) -> list[Node]:
        self.take("(")
        out: list[Node] = []
        while self.peek()[1] != ")":
            out.append(self.ternary())
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return out

    def postfix(self, node: Node) -> Node:
        while True:
            tok = self.peek()[1]
            if tok == ".":
                self.take()
                name = self.take()[1]
                if self.peek()[1] == "(":
                    node = ("call", name, node, self.args())
                else:
                    node = (".", node, name)
            elif tok == "[":
                self.take()
                idx = self.ternary()
                self.take("]")
                node = ("[]", node, idx)
            else:
                return node

    def primary(self) -> Node:
        kind, value = self.take()
        if kind == "num":
            if value.endswith("u"):
                return ("lit", int(value[:-1]))
            return ("lit", float(value) if any(c in value for c in ".eE") else int(value))
        if kind == "str":
            return ("lit", bytes(value[1:-1], "utf-8").decode("unicode_escape"))
        if kind == "id":
            if value in {"true", "false"}:
                return ("lit", value == "true")
            if value == "null":
                return ("lit", None)
            if self.peek()[1] == "(":
                args = self.args()
                if value == "has":
                    if len(args) != 1 or args[0][0] != ".":
                        raise ValueError(
                            f"CEL expression {self.text!r}: has() needs a field selection"
                        )
                    return ("has", args[0])
                if value not in _FUNCS:
                    raise ValueError(f"CEL expression {self.text!r}: unknown function {value}()")
                return ("fn", value, args)
            return ("var", value)
        if value == "(":
            node = self.ternary()
            self.take(")")
            return node
        if value == "[":
            items: list[Node] = []
            while self.peek()[1] != "]":
                items.append(self.ternary())
                if self.peek()[1] == ",":
                    self.take()
            self.take("]")
            return ("list", items)
        raise ValueError(f"CEL expression {self.text!r}: unexpected {value!r}")


def _size(v: Any) -> int:
    return len(v)


_FUNCS: dict[str, Callable[..., Any]] = {
    "int": lambda v: int(float(v)) if isinstance(v, str) and "." in v else int(v),
    "uint": lambda v: int(v),
    "double": float,
    "string": lambda v: (
        v if isinstance(v, str) else ("true" if v is True else "false" if v is False else str(v))
    ),
    "size": _size,
}

_METHODS: dict[str, Callable[..., Any]] = {
    "startsWith": lambda s, p: s.startswith(p),
    "endsWith": lambda s, p: s.endswith(p),
    "contains": lambda s, p: p in s,
    "matches": lambda s, p: re.search(p, s) is not None,
    "size": lambda s: len(s),
}


class _EvalError(Exception):
    pass


def _eval(node: Node, env: Mapping[str, Any]) -> Any:
    op = node[0]
    if op == "lit":
        return node[1]
    if op == "var":
        if node[1] not in env:
            raise _EvalError(f"undeclared reference to {node[1]!r}")
        return env[node[1]]
    if op == ".":
        obj = _eval(node[1], env)
        if isinstance(obj, Mapping) and node[2] in obj:
            return obj[node[2]]
        raise _EvalError(f"no such key: {node[2]}")
    if op == "[]":
        obj = _eval(node[1], env)
        idx = _eval(node[2], env)
        try:
            return obj[idx]
        except (KeyError, IndexError, TypeError):
            raise _EvalError(f"no such key: {idx}") from None
    if op == "has":
        sel = node[1]
        try:
            obj = _eval(sel[1], env)
        except _EvalError:
            return False
        return isinstance(obj, Mapping) and sel[2] in obj
    if op == "u!":
        return not _truth(_eval(node[1], env))
    if op == "u-":
        return -_eval(node[1], env)
    if op == "&&":
        return _truth(_eval(node[1], env)) and _truth(_eval(node[2], env))
    if op == "||":
        return _truth(_eval(node[1], env)) or _truth(_eval(node[2], env))
    if op == "?":
        return _eval(node[2], env) if _truth(_eval(node[1], env)) else _eval(node[3], env)
    if op == "list":
        return [_eval(n, env) for n in node[1]]
    if op == "fn":
        args = [_eval(n, env) for n in node[2]]
        try:
            return _FUNCS[node[1]](*args)
        except (TypeError, ValueError) as exc:
            raise _EvalError(str(exc)) from None
    if op == "call":
        target = _eval(node[2], env)
        args = [_eval(n, env) for n in node[3]]
        fn = _METHODS.get(node[1])
        if fn is None:
            raise _EvalError(f"unknown method {node[1]}")
        try:
            return fn(target, *args)
        except (TypeError, AttributeError, re.error) as exc:
            raise _EvalError(str(exc)) from None
    a = _eval(node[1], env)
    b = _eval(node[2], env)
    try:
        if op == "==":
            return a == b
        if op == "!=":
            return a != b
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        if op == ">":
            return a > b
        if op == ">=":
            return a >= b
        if op == "in":
            return a in b
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a // b if isinstance(a, int) and isinstance(b, int) else a / b
        if op == "%":
            return a % b
    except (TypeError, ZeroDivisionError) as exc:
        raise _EvalError(str(exc)) from None
    raise _EvalError(f"unsupported operator {op}")


def _truth(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _EvalError(f"expected a boolean, found {value!r}")
    return value


class Expression:
    """A compiled CEL expression; :meth:`matches` is false when evaluation fails."""

    __slots__ = ("_node", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._node = _Parser(source).parse()

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        """The value of the expression; raises ValueError when it cannot be evaluated."""
        try:
            return _eval(self._node, env)
        except _EvalError as exc:
            raise ValueError(f"CEL expression {self.source!r}: {exc}") from None

    def matches(self, env: Mapping[str, Any]) -> bool:
        try:
            return _eval(self._node, env) is True
        except _EvalError:
            return False


@lru_cache(maxsize=256)
def compile_expression(source: str) -> Expression:
    """Compile (and cache) a CEL expression; raises ValueError naming the problem."""
    if not source.strip():
        raise ValueError("CEL expression is empty")
    return Expression(source)
