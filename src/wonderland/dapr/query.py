"""The state query language (``filter``, ``sort``, ``page``) over JSON values.

Used for stores that answer queries by scanning their keys (in-memory, sqlite, postgresql).
Operators follow components-contrib ``state/query/filter.go``: EQ, NEQ, GT, GTE, LT, LTE,
IN, AND, OR.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

from wonderland.dapr.components.base import GetResponse

__all__ = ["run_query"]

_MISSING = object()


def _field(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            return _MISSING
    return doc


def _single(flt: dict[str, Any], what: str) -> tuple[str, Any]:
    if not isinstance(flt, dict) or len(flt) != 1:
        raise ValueError(f"{what} must be an object with exactly one field, found {flt!r}")
    return next(iter(flt.items()))


def _match(doc: Any, flt: dict[str, Any]) -> bool:
    op, arg = _single(flt, "a filter")
    if op in {"AND", "OR"}:
        if not isinstance(arg, list) or len(arg) < 2:
            raise ValueError(f"{op} needs a list of at least two filters")
        results = (_match(doc, f) for f in arg)
        return all(results) if op == "AND" else any(results)
    key, value = _single(arg, f"the {op} filter")
    got = _field(doc, key)
    if got is _MISSING:
        return op == "NEQ"
    try:
        if op == "EQ":
            return bool(got == value)
        if op == "NEQ":
            return bool(got != value)
        if op == "GT":
            return bool(got > value)
        if op == "GTE":
            return bool(got >= value)
        if op == "LT":
            return bool(got < value)
        if op == "LTE":
            return bool(got <= value)
        if op == "IN":
            if not isinstance(value, list):
                raise ValueError("IN needs a list of values")
            return got in value
    except TypeError:
        return False
    raise ValueError(f"unknown filter operator {op!r}; use EQ, NEQ, GT, GTE, LT, LTE, IN, AND, OR")


def run_query(
    rows: list[tuple[str, GetResponse]], query: dict[str, Any]
) -> tuple[list[dict[str, Any]], str]:
    """Filter, sort and page ``rows`` (key without prefix, stored item)."""
    unknown = set(query) - {"filter", "sort", "page"}
    if unknown:
        raise ValueError(f"unknown query field(s) {sorted(unknown)}; use filter, sort, page")
    docs: list[tuple[str, Any, GetResponse]] = []
    for key, item in rows:
        try:
            doc = orjson.loads(item.data)
        except orjson.JSONDecodeError:
            continue
        docs.append((key, doc, item))
    flt = query.get("filter")
    if flt:
        if not isinstance(flt, dict):
            raise ValueError('filter must be an object such as {"EQ": {"field": value}}')
        try:
            docs = [d for d in docs if _match(d[1], flt)]
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"malformed filter {flt!r}: {exc}") from None
    sorts = query.get("sort") or []
    if not isinstance(sorts, list) or not all(isinstance(spec, dict) for spec in sorts):
        raise ValueError('sort must be a list of {"key": ..., "order": "ASC"|"DESC"} objects')
    for spec in reversed(sorts):
        key = spec.get("key")
        if not key:
            raise ValueError("each sort entry needs a key")
        desc = str(spec.get("order", "ASC")).upper() == "DESC"

        def cmp(
            a: tuple[str, Any, GetResponse], b: tuple[str, Any, GetResponse], key: str = key
        ) -> int:
            x, y = _field(a[1], key), _field(b[1], key)
            if x is _MISSING or y is _MISSING:
                return (x is _MISSING) - (y is _MISSING)
            try:
                return int((x > y) - (x < y))
            except TypeError:
                return 0

        docs.sort(key=functools.cmp_to_key(cmp), reverse=desc)
    if not sorts:
        docs.sort(key=lambda d: d[0])
    page = query.get("page") or {}
    if not isinstance(page, dict):
        raise ValueError('page must be an object such as {"limit": 10, "token": "..."}')
    try:
        start = int(page.get("token") or 0)
        limit = int(page.get("limit") or 0)
    except (TypeError, ValueError):
        raise ValueError(f"page.limit and page.token must be whole numbers, not {page!r}") from None
    chosen = docs[start : start + limit] if limit else docs[start:]
    token = str(start + len(chosen)) if limit and start + len(chosen) < len(docs) else ""
    return [{"key": k, "data": item.data, "etag": item.etag} for k, _d, item in chosen], token
