"""Prometheus series selectors, as ``/federate?match[]=`` takes them.

``up``, ``kn_serving_queue_depth{kn_revision_name="hello-00001"}``,
``{__name__=~"dapr_.*",app_id!="x"}``: a metric name and/or matchers with ``=``, ``!=``,
``=~`` and ``!~``. Regular expressions are anchored, as in Prometheus. A selector that
matches the empty string with every matcher (``{a=""}``) is refused, as Prometheus does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["LabelMatcher", "SeriesSelector", "parse_selector"]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPS = ("=~", "!~", "!=", "=")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


@dataclass(frozen=True)
class LabelMatcher:
    name: str
    op: str  # = != =~ !~
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(got) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True)
class SeriesSelector:
    text: str
    matchers: tuple[LabelMatcher, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a series (its labels with ``__name__``) is selected."""
        return all(m.matches(labels) for m in self.matchers)


def _bad(text: str, at: int, what: str) -> ValueError:
    return ValueError(
        f"bad selector {text!r} at character {at + 1}: {what}; write e.g. "
        'kn_serving_queue_depth{kn_revision_name="hello-00001"} or {__name__=~"dapr_.*"}'
    )


def _string(text: str, i: int) -> tuple[str, int]:
    quote = text[i] if i < len(text) else ""
    if quote not in ('"', "'", "`"):
        raise _bad(text, i, "expected a quoted value")
    out: list[str] = []
    i += 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\" and quote != "`":
            if i + 1 >= len(text):
                break
            out.append(_ESCAPES.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
            continue
        out.append(ch)
        i += 1
    raise _bad(text, i, "the quoted value is not closed")


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def parse_selector(text: str) -> SeriesSelector:
    """Parse one selector; ValueError saying where it is wrong."""
    i = _skip(text, 0)
    matchers: list[LabelMatcher] = []
    name = _NAME.match(text, i)
    if name:
        matchers.append(LabelMatcher("__name__", "=", name.group()))
        i = _skip(text, name.end())
    if i < len(text) and text[i] == "{":
        i = _skip(text, i + 1)
        while i < len(text) and text[i] != "}":
            label = _LABEL.match(text, i)
            if not label:
                raise _bad(text, i, "expected a label name")
            i = _skip(text, label.end())
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is None:
                raise _bad(text, i, "expected one of = != =~ !~")
            value, i = _string(text, _skip(text, i + len(op)))
            pattern = None
            if op in ("=~", "!~"):
                try:
                    pattern = re.compile(value)
                except re.error as exc:
                    raise _bad(text, i, f"{value!r} is not a regular expression ({exc})") from None
            matchers.append(LabelMatcher(label.group(), op, value, pattern))
            i = _skip(text, i)
            if i < len(text) and text[i] == ",":
                i = _skip(text, i + 1)
            elif i < len(text) and text[i] != "}":
                raise _bad(text, i, "expected , or }")
        if i >= len(text):
            raise _bad(text, i, "the { is not closed")
        i = _skip(text, i + 1)
    if i != len(text):
        raise _bad(text, i, "unexpected text")
    if not matchers:
        raise _bad(text, 0, "a selector needs a metric name or a label matcher")
    if all(m.matches({}) for m in matchers):
        raise ValueError(
            f"bad selector {text!r}: it matches every series (each matcher matches an empty "
            "label); add a matcher that needs a value, e.g. a metric name"
        )
    return SeriesSelector(text, tuple(matchers))
