"""Datasets as text: the ``wonderland get datasets`` table and ``data describe``."""

from __future__ import annotations

from wonderland.api.core_printers import since
from wonderland.api.printing import render
from wonderland.datasets.onboard import Dataset, short_digest

__all__ = ["describe", "human_size", "table"]


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def table(datasets: list[Dataset], with_namespace: bool = False) -> str:
    """kubectl-style rows: name, status, files, size, short digest, source, age."""
    columns = ["Name", "Status", "Files", "Size", "Digest", "Source", "Age"]
    rows = [
        {
            "cells": [
                d.name,
                d.phase,
                str(d.files),
                human_size(d.size),
                short_digest(d.digest),
                d.source,
                since(d.created),
            ],
            "object": {"metadata": {"namespace": d.namespace}},
        }
        for d in datasets
    ]
    defs = [{"name": c, "type": "string"} for c in columns]
    return "\n".join(render({"columnDefinitions": defs, "rows": rows}, False, with_namespace))


def describe(d: Dataset) -> str:
    lines = [
        f"Name:         {d.name}",
        f"Namespace:    {d.namespace}",
        f"Status:       {d.phase}",
        f"Source:       {d.source}",
        f"Digest:       {d.digest}",
        f"Size:         {human_size(d.size)} ({d.size} bytes)",
        f"Files:        {d.files}",
        f"Claim:        persistentvolumeclaim/{d.name} (mount it with claimName: {d.name})",
    ]
    if not d.schemas:
        lines.append("Schema:       <no CSV or Parquet files>")
    else:
        lines.append("Schema:")
        for s in d.schemas:
            rows = f", {s.rows} rows" if s.rows is not None else ""
            lines.append(f"  {s.path} ({s.format}{rows})")
            if s.error:
                lines.append(f"    {s.error}")
            for c in s.columns:
                lines.append(f"    {c.name}: {c.type}")
    return "\n".join(lines)
