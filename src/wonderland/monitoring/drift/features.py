"""Inference request bodies as rows of features, by the reference's column names.

- Open Inference Protocol (V2): ``{"inputs": [{"name", "shape", "datatype", "data"}]}``.
  One input of shape ``[n, d]`` holds d features in the reference's column order; several
  inputs (one per feature, shape ``[n]`` or ``[n, 1]``, as pandas-style requests send them)
  are matched by name.
- V1: ``{"instances": [[...], ...]}`` (in column order), ``[{"name": value}, ...]`` (by
  name) or ``[value, ...]`` (one feature).

A body whose inputs do not match the reference's columns raises :class:`ColumnMismatch`
naming both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

__all__ = ["ColumnMismatch", "columns_of"]


class ColumnMismatch(ValueError):
    """The request's inputs are not the reference sample's columns."""


def _mismatch(columns: Sequence[str], what: str) -> ColumnMismatch:
    return ColumnMismatch(
        f"the reference sample's columns are [{', '.join(columns)}] but the request {what}; "
        "give a reference sample whose columns are the model's inputs (same names, same order)"
    )


def _positional(rows: Any, columns: Sequence[str], what: str) -> dict[str, list[Any]]:
    arr = np.asarray(rows, dtype=object)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1) if len(columns) == 1 else arr.reshape(1, -1)
    if arr.ndim != 2:
        raise _mismatch(columns, f"{what} has shape {list(arr.shape)}")
    if arr.shape[1] != len(columns):
        raise _mismatch(columns, f"{what} has {arr.shape[1]} values per row")
    return {c: arr[:, i].tolist() for i, c in enumerate(columns)}


def _by_name(
    named: dict[str, list[Any]], columns: Sequence[str], what: str
) -> dict[str, list[Any]]:
    if set(named) != set(columns):
        raise _mismatch(columns, f"{what} [{', '.join(named)}]")
    return {c: named[c] for c in columns}


def _tensor_values(tensor: dict[str, Any]) -> Any:
    data = tensor.get("data")
    shape = tensor.get("shape")
    arr: Any = np.asarray(data, dtype=object).ravel()
    if (
        isinstance(shape, list)
        and shape
        and all(isinstance(d, int) and d >= 0 for d in shape)
        and math.prod(shape) == arr.size
    ):
        arr = arr.reshape(shape)
    return arr


def columns_of(body: bytes, columns: Sequence[str]) -> dict[str, list[Any]]:
    """The features of every row of an inference request, by column name."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("the request body is not JSON (V1 or V2 inference request)") from None
    if not isinstance(doc, dict):
        raise ValueError("the request body is not a V1 or V2 inference request (a JSON object)")
    inputs = doc.get("inputs")
    if isinstance(inputs, list) and inputs and all(isinstance(t, dict) for t in inputs):
        if len(inputs) == 1:
            arr = _tensor_values(inputs[0])
            if arr.ndim == 1 and len(columns) > 1 and arr.size % len(columns) == 0:
                arr = arr.reshape(-1, len(columns))
            return _positional(arr, columns, f"input {inputs[0].get('name', '')!r}")
        named = {}
        for tensor in inputs:
            arr = _tensor_values(tensor)
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            if arr.ndim != 1:
                raise _mismatch(
                    columns,
                    f"input {tensor.get('name')!r} has shape {list(arr.shape)} among several "
                    "inputs (one input per feature expected)",
                )
            named[str(tensor.get("name", ""))] = arr.tolist()
        return _by_name(named, columns, "has the inputs")
    instances = doc.get("instances")
    if isinstance(instances, list):
        if not instances:
            return {c: [] for c in columns}
        if all(isinstance(i, dict) for i in instances):
            keys = list(instances[0])
            named = {k: [i.get(k) for i in instances] for k in keys}
            return _by_name(named, columns, "has the fields")
        return _positional(instances, columns, "'instances'")
    raise ValueError("the request has neither 'inputs' (V2) nor 'instances' (V1)")
