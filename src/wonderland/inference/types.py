"""Open Inference Protocol tensors and messages, protocol-agnostic.

Names follow KServe's ``kserve.protocol.infer_type`` (``InferRequest``, ``InferInput``,
``InferOutput``, ``InferResponse``, ``as_numpy``) so custom model code written for KServe
reads the same objects here.
"""

from __future__ import annotations

import itertools
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wonderland.inference.errors import InvalidInputError

__all__ = [
    "DATATYPES",
    "InferInput",
    "InferOutput",
    "InferRequest",
    "InferResponse",
    "Parameters",
    "RequestedOutput",
    "TensorMetadata",
    "datatype_of",
    "new_id",
    "numpy_dtype",
    "tensor_from_data",
]

Parameters = dict[str, Any]

# Response ids for requests that carry none: unique per process start, cheap per call.
_ID_PREFIX = uuid.uuid4().hex[:12]
_ID_COUNTER = itertools.count(1)


def new_id() -> str:
    return f"{_ID_PREFIX}-{next(_ID_COUNTER)}"


# OIP datatype -> numpy dtype (little-endian). BYTES is an object array of ``bytes``.
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
    # BF16 has no numpy type; it travels as raw 2-byte words (uint16).
    "BF16": np.dtype("<u2"),
}

_KIND_TO_DATATYPE = {
    "b": "BOOL",
    "O": "BYTES",
    "S": "BYTES",
    "U": "BYTES",
}


def numpy_dtype(datatype: str, where: str = "") -> np.dtype[Any]:
    """The numpy dtype for an OIP datatype, or a 400 naming the known ones."""
    try:
        return DATATYPES[datatype]
    except (KeyError, TypeError):
        known = ", ".join(DATATYPES)
        raise InvalidInputError(
            f"unknown datatype {datatype!r}{where}; use one of {known}"
        ) from None


def datatype_of(array: np.ndarray[Any, Any]) -> str:
    """The OIP datatype that carries ``array``."""
    kind = array.dtype.kind
    if kind in _KIND_TO_DATATYPE:
        return _KIND_TO_DATATYPE[kind]
    name = {
        "u1": "UINT8",
        "u2": "UINT16",
        "u4": "UINT32",
        "u8": "UINT64",
        "i1": "INT8",
        "i2": "INT16",
        "i4": "INT32",
        "i8": "INT64",
        "f2": "FP16",
        "f4": "FP32",
        "f8": "FP64",
    }.get(f"{kind}{array.dtype.itemsize}")
    if name is None:
        raise InvalidInputError(f"numpy dtype {array.dtype} has no Open Inference Protocol type")
    return name


@dataclass(slots=True)
class TensorMetadata:
    """A tensor as model metadata describes it; -1 in ``shape`` means variable."""

    name: str
    datatype: str
    shape: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


@dataclass(slots=True)
class InferInput:
    """One request tensor. ``data`` is a numpy array already shaped as ``shape``."""

    name: str
    shape: list[int]
    datatype: str
    data: np.ndarray[Any, Any]
    parameters: Parameters = field(default_factory=dict)

    def as_numpy(self) -> np.ndarray[Any, Any]:
        return self.data

    def as_string(self) -> list[str]:
        """BYTES elements decoded as UTF-8 (KServe's ``InferInput.as_string``)."""
        return [
            x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in self.data.reshape(-1)
        ]


@dataclass(slots=True)
class InferOutput:
    """One response tensor."""

    name: str
    shape: list[int]
    datatype: str
    data: np.ndarray[Any, Any]
    parameters: Parameters = field(default_factory=dict)

    @classmethod
    def from_numpy(cls, name: str, array: Any) -> InferOutput:
        arr = np.asarray(array)
        if arr.dtype.kind in "SU":
            arr = _to_bytes_array(arr)
        return cls(name=name, shape=list(arr.shape), datatype=datatype_of(arr), data=arr)

    def as_numpy(self) -> np.ndarray[Any, Any]:
        return self.data

    def as_string_list(self) -> Any:
        """The data as nested lists, BYTES decoded as UTF-8 (for JSON bodies)."""
        if self.data.dtype != object:
            return self.data.tolist()
        flat = [
            x.decode("utf-8", "replace") if isinstance(x, bytes) else x
            for x in self.data.reshape(-1)
        ]
        return np.array(flat, dtype=object).reshape(self.data.shape).tolist()


@dataclass(slots=True)
class RequestedOutput:
    """An output the client asked for, with its parameters (``binary_data``)."""

    name: str
    parameters: Parameters = field(default_factory=dict)


@dataclass(slots=True)
class InferRequest:
    """An inference request after decoding, whatever the protocol."""

    model_name: str
    inputs: list[InferInput]
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)
    outputs: list[RequestedOutput] | None = None
    model_version: str | None = None
    from_grpc: bool = False
    raw_grpc: bool = False

    def input(self, name: str) -> InferInput:
        for tensor in self.inputs:
            if tensor.name == name:
                return tensor
        raise InvalidInputError(
            f"request has no input named {name!r}; it has {[t.name for t in self.inputs]}"
        )


@dataclass(slots=True)
class InferResponse:
    """An inference response before encoding."""

    model_name: str
    outputs: list[InferOutput]
    id: str | None = None
    model_version: str | None = None
    parameters: Parameters = field(default_factory=dict)

    @property
    def infer_outputs(self) -> list[InferOutput]:
        """KServe's name for ``outputs``."""
        return self.outputs


def _to_bytes_array(arr: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    out = np.empty(arr.shape, dtype=object)
    flat = out.reshape(-1)
    for i, x in enumerate(arr.reshape(-1)):
        flat[i] = x.encode("utf-8") if isinstance(x, str) else bytes(x)
    return out


def bytes_array(values: Sequence[Any], shape: Sequence[int]) -> np.ndarray[Any, Any]:
    """An object array of ``bytes`` from strings/bytes, shaped as ``shape``."""
    out = np.empty(len(values), dtype=object)
    for i, x in enumerate(values):
        if isinstance(x, bytes):
            out[i] = x
        elif isinstance(x, str):
            out[i] = x.encode("utf-8")
        else:
            raise InvalidInputError(
                f"BYTES element {i} is {type(x).__name__}; send strings (or binary data)"
            )
    return out.reshape(tuple(shape))


def _flatten(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def tensor_from_data(
    data: Any, shape: list[int], datatype: str, where: str
) -> np.ndarray[Any, Any]:
    """A numpy array from JSON ``data`` (flat or nested), checked against ``shape``."""
    dtype = numpy_dtype(datatype, f" in {where}")
    count = math.prod(shape)
    if not isinstance(data, list):
        data = [data]
    if datatype == "BYTES":
        flat = _flatten(data)
        if len(flat) != count:
            raise InvalidInputError(
                f"{where}: shape {shape} needs {count} elements but 'data' has {len(flat)}"
            )
        return bytes_array(flat, shape)
    try:
        if datatype == "BF16":
            wide = np.asarray(data, dtype=np.float32)
            arr = (wide.view(np.uint32) >> 16).astype(np.uint16)
        else:
            arr = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInputError(
            f"{where}: 'data' does not fit datatype {datatype} ({exc})"
        ) from None
    if arr.size != count:
        raise InvalidInputError(
            f"{where}: shape {shape} needs {count} elements but 'data' has {arr.size}"
        )
    return arr.reshape(shape)
