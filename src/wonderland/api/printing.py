"""Table output shaped as kubectl prints it: the name, then the kind's printer columns.

Both the control API (``Accept: ...;as=Table``) and the CLI use :func:`table`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from wonderland.api.kinds import PrinterColumn, ResourceKind

__all__ = ["age", "columns", "evaluate", "human_duration", "render", "table", "table_rows"]

_TOKEN = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_\-]+)
      | \[\s*'(?P<quoted>(?:[^'\\]|\\.)*)'\s*\]
      | \[\s*\*\s*\]
      | \[\s*(?P<index>-?\d+)\s*\]
      | \[\s*(?P<start>-?\d*)\s*:\s*(?P<stop>-?\d*)\s*\]
      | \[\s*\?\(\s*@\.(?P<fkey>[A-Za-z0-9_\-]+)\s*==\s*(?P<fval>'[^']*'|true|false|-?\d+)\s*\)\s*\]""",
    re.VERBOSE,
)


def _parse(path: str) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if m is None:
            raise ValueError(f"unsupported JSONPath {path!r} at {pos}")
        if m.group("field") is not None:
            steps.append(("field", m.group("field")))
        elif m.group("quoted") is not None:
            steps.append(("field", m.group("quoted").replace("\\.", ".")))
        elif m.group("index") is not None:
            steps.append(("index", int(m.group("index"))))
        elif m.group("start") is not None:
            start, stop = m.group("start"), m.group("stop")
            steps.append(("slice", (int(start) if start else None, int(stop) if stop else None)))
        elif m.group("fkey") is not None:
            raw = m.group("fval")
            value: Any = (
                raw[1:-1] if raw.startswith("'") else {"true": True, "false": False}.get(raw, raw)
            )
            if isinstance(value, str) and not raw.startswith("'"):
                value = int(value)
            steps.append(("filter", (m.group("fkey"), value)))
        else:
            steps.append(("all", None))
        pos = m.end()
    return steps


def evaluate(obj: Any, path: str) -> list[Any]:
    """The values a kubectl JSONPath (the subset CRD printer columns use) selects."""
    current = [obj]
    for kind, arg in _parse(path):
        nxt: list[Any] = []
        for value in current:
            if (kind == "field" and isinstance(value, dict) and arg in value) or (
                kind == "index" and isinstance(value, list) and -len(value) <= arg < len(value)
            ):
                nxt.append(value[arg])
            elif kind == "slice" and isinstance(value, list):
                nxt.extend(value[slice(*arg)])
            elif kind == "all" and isinstance(value, list):
                nxt.extend(value)
            elif kind == "filter" and isinstance(value, list):
                key, want = arg
                nxt.extend(v for v in value if isinstance(v, dict) and v.get(key) == want)
        current = nxt
    return current


def human_duration(seconds: float) -> str:
    """kubectl's age format: 45s, 5m10s, 45m, 3h20m, 30h, 3d5h, 12d, 2y."""
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def age(timestamp: str | None, now: datetime | None = None) -> str:
    if not timestamp:
        return "<unknown>"
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return human_duration(((now or datetime.now(UTC)) - then).total_seconds())


def _cell(obj: dict[str, Any], column: PrinterColumn) -> Any:
    values = evaluate(obj, column.json_path)
    if column.type == "date":
        # As the API server does for CRDs: the cell holds the age ("5m"), not the date.
        return age(values[0]) if values and values[0] else None
    if column.name == "Data" and column.json_path in (".data",):
        data = obj.get("data") or {}
        return len(data) + len(obj.get("binaryData") or {})
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return ",".join(str(v) for v in values)


def columns(kind: ResourceKind) -> list[PrinterColumn]:
    """Name first, then the kind's columns (Age alone when the kind has none)."""
    if kind.row is not None:
        return list(kind.printer_columns)
    cols = list(kind.printer_columns) or [
        PrinterColumn("Age", "date", ".metadata.creationTimestamp")
    ]
    return [PrinterColumn("Name", "string", ".metadata.name", format="name"), *cols]


def table_rows(kind: ResourceKind, items: list[dict[str, Any]]) -> list[list[Any]]:
    if kind.row is not None:
        return [kind.row(item) for item in items]
    cols = columns(kind)
    return [[_cell(item, c) for c in cols] for item in items]


def table(
    kind: ResourceKind,
    items: list[dict[str, Any]],
    resource_version: str = "",
    include: str = "Metadata",
) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table, as the API server answers ``Accept: ...;as=Table``."""
    cols = columns(kind)
    rows = []
    for item, cells in zip(items, table_rows(kind, items), strict=True):
        row: dict[str, Any] = {"cells": cells}
        if include == "Object":
            row["object"] = item
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": item.get("metadata", {}),
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {
                "name": c.name,
                "type": c.type,
                "format": c.format,
                "description": c.description or c.name,
                "priority": c.priority,
            }
            for c in cols
        ],
        "rows": rows,
    }


def render(
    table_obj: dict[str, Any], wide: bool = False, with_namespace: bool = False
) -> list[str]:
    """Text lines as kubectl prints a Table: upper-case headers, columns 3 spaces apart."""
    defs = table_obj["columnDefinitions"]
    keep = [i for i, d in enumerate(defs) if wide or not d.get("priority")]
    header = [defs[i]["name"].upper() for i in keep]
    body = []
    for row in table_obj["rows"]:
        cells = []
        for i in keep:
            value = row["cells"][i]
            if defs[i]["type"] == "date":
                text = str(value) if value else "<unknown>"
            elif value is None:
                text = "<none>" if defs[i]["type"] != "string" or defs[i]["name"] == "Name" else ""
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            cells.append(text)
        if with_namespace:
            ns = (row.get("object") or {}).get("metadata", {}).get("namespace", "")
            cells.insert(0, ns)
        body.append(cells)
    if with_namespace:
        header.insert(0, "NAMESPACE")
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = []
    for r in [header, *body]:
        lines.append("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return lines
