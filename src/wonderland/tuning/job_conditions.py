"""Trials' ``successCondition`` and ``failureCondition``: the subset of GJSON paths that
Katib's defaults and documentation use, evaluated against the run object (Job, TrainJob).

Katib evaluates them with ``gjson.Get(runObjectJSON, condition).Exists()``. Supported:

- dotted keys: ``status.succeeded``, ``status.conditions``;
- a query over an array, first match or all matches: ``#(type=="Complete")`` and
  ``#(type=="Complete")#``, with ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` against a
  string, number, ``true``/``false``, or the ``%`` / ``!%`` pattern match;
- the pipe ``|`` between steps: ``status.conditions.#(type=="Failed")#|#(status=="True")#``;
- a comparison of a plain value: ``status.succeeded>0`` is written upstream as
  ``status.[@this].#(succeeded>0)``; here the form ``status.#(succeeded>0)`` on an object is
  read the same way.

Anything else raises :class:`UnsupportedConditionError` at admission, with the forms above.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from wonderland.errors import WonderlandError

__all__ = ["Condition", "UnsupportedConditionError", "parse"]

_QUERY = re.compile(
    r"""^\#\(\s*(?P<key>[A-Za-z0-9_.\-]+)\s*(?P<op>==|!=|<=|>=|<|>|!%|%)\s*(?P<value>.+?)\s*\)(?P<all>\#?)$"""
)
_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")
_MISSING = object()


class UnsupportedConditionError(WonderlandError):
    """A condition uses GJSON syntax outside the supported subset."""


@dataclass(frozen=True)
class _Key:
    name: str


@dataclass(frozen=True)
class _Query:
    key: str
    op: str
    value: Any
    all: bool


_Step = _Key | _Query


def _literal(text: str, condition: str) -> Any:
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return float(text)
    except ValueError:
        raise UnsupportedConditionError(
            f'condition "{condition}": {text} is not a quoted string, a number, true or false'
        ) from None


def _split_dots(path: str) -> list[str]:
    """Split on dots outside ``#(...)``."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in path:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "." and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _split_pipes(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current = ""
    in_string = False
    for char in text:
        if char == '"':
            in_string = not in_string
        elif not in_string and char == "(":
            depth += 1
        elif not in_string and char == ")":
            depth -= 1
        if char == "|" and depth == 0 and not in_string:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


class Condition:
    """A parsed condition; :meth:`holds` tells whether it matches an object."""

    def __init__(self, text: str, steps: list[_Step]) -> None:
        self.text = text
        self.steps = steps

    def holds(self, obj: Any) -> bool:
        value = _evaluate(obj, self.steps)
        if value is _MISSING or value is None:
            return False
        return not (isinstance(value, list) and not value and self._ends_in_all_query())

    def _ends_in_all_query(self) -> bool:
        last = self.steps[-1] if self.steps else None
        return isinstance(last, _Query) and last.all


def parse(text: str) -> Condition:
    """Parse ``text``; UnsupportedConditionError naming the part it cannot read."""
    steps: list[_Step] = []
    if not text.strip():
        raise UnsupportedConditionError("condition is empty")
    for segment in _split_pipes(text.strip()):
        for part in _split_dots(segment):
            if not part:
                raise UnsupportedConditionError(f'condition "{text}": empty path component')
            match = _QUERY.match(part)
            if match is not None:
                op = match.group("op")
                raw = match.group("value")
                value = raw[1:-1] if op in ("%", "!%") and raw.startswith('"') else raw
                steps.append(
                    _Query(
                        match.group("key"),
                        op,
                        value if op in ("%", "!%") else _literal(raw, text),
                        bool(match.group("all")),
                    )
                )
            elif _KEY.match(part):
                steps.append(_Key(part))
            else:
                raise UnsupportedConditionError(
                    f'condition "{text}": "{part}" is outside the GJSON subset wonderland '
                    'evaluates (dotted keys, #(key=="value") and #(key=="value")# queries, '
                    'and "|" between them, e.g. '
                    'status.conditions.#(type=="Complete")#|#(status=="True")#)'
                )
    return Condition(text, steps)


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op in ("%", "!%"):
        matched = isinstance(actual, str) and fnmatch.fnmatchcase(actual, str(expected))
        return matched if op == "%" else not matched
    if isinstance(expected, (bool, str)):
        if op == "==":
            return bool(actual == expected)
        if op == "!=":
            return bool(actual != expected)
        if isinstance(expected, str) and isinstance(actual, str):
            return {
                "<": actual < expected,
                "<=": actual <= expected,
                ">": actual > expected,
                ">=": actual >= expected,
            }[op]
        return False
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return False
    number = float(actual)
    result: bool = {
        "==": number == expected,
        "!=": number != expected,
        "<": number < expected,
        "<=": number <= expected,
        ">": number > expected,
        ">=": number >= expected,
    }[op]
    return result


def _evaluate(value: Any, steps: list[_Step]) -> Any:
    for step in steps:
        if value is _MISSING:
            return _MISSING
        if isinstance(step, _Key):
            value = value.get(step.name, _MISSING) if isinstance(value, dict) else _MISSING
            continue
        items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
        matches = [
            item
            for item in items
            if isinstance(item, dict) and _compare(item.get(step.key), step.op, step.value)
        ]
        value = matches if step.all else matches[0] if matches else _MISSING
    return value
