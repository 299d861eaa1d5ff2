"""Label selectors in kubectl syntax: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``,
``k notin (a,b)``, ``k``, ``!k``; a comma means AND."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from wonderland.errors import InvalidError

__all__ = ["Requirement", "from_label_selector", "matches", "parse_label_selector"]

_SET = re.compile(r"^\s*([^\s!=,()]+)\s+(in|notin)\s+\(([^)]*)\)\s*")
_EQ = re.compile(r"^\s*([^\s!=,()]+)\s*(==|=|!=)\s*([^\s,()]*)\s*")
_EXISTS = re.compile(r"^\s*(!?)\s*([^\s!=,()]+)\s*")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values


def parse_label_selector(selector: str | Mapping[str, str] | None) -> list[Requirement]:
    """Parse a selector string (or a ``{key: value}`` mapping) into requirements."""
    if selector is None:
        return []
    if not isinstance(selector, str):
        return [Requirement(k, "in", frozenset([v])) for k, v in selector.items()]
    rest = selector.strip()
    out: list[Requirement] = []
    while rest:
        if m := _SET.match(rest):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            out.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ.match(rest):
            op = "notin" if m.group(2) == "!=" else "in"
            out.append(Requirement(m.group(1), op, frozenset([m.group(3)])))
        elif m := _EXISTS.match(rest):
            out.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise InvalidError("labelSelector", f'cannot parse "{selector}"')
        rest = rest[m.end() :]
        if rest.startswith(","):
            rest = rest[1:]
        elif rest:
            raise InvalidError("labelSelector", f'cannot parse "{selector}" near "{rest}"')
    return out


def matches(requirements: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in requirements)


def from_label_selector(selector: Mapping[str, object] | None) -> list[Requirement]:
    """A ``metav1.LabelSelector`` (``matchLabels``, ``matchExpressions``) as requirements;
    an empty selector matches everything."""
    if not selector:
        return []
    out: list[Requirement] = []
    match_labels = selector.get("matchLabels") or {}
    assert isinstance(match_labels, Mapping)
    for key, value in match_labels.items():
        out.append(Requirement(str(key), "in", frozenset([str(value)])))
    expressions = selector.get("matchExpressions") or []
    assert isinstance(expressions, list)
    for expr in expressions:
        op = str(expr.get("operator"))
        values = frozenset(str(v) for v in expr.get("values") or [])
        key = str(expr.get("key"))
        if op == "In":
            out.append(Requirement(key, "in", values))
        elif op == "NotIn":
            out.append(Requirement(key, "notin", values))
        elif op == "Exists":
            out.append(Requirement(key, "exists"))
        elif op == "DoesNotExist":
            out.append(Requirement(key, "!exists"))
        else:
            raise InvalidError("selector", f'"{op}" is not a valid label selector operator')
    return out
