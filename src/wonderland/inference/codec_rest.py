"""REST codecs: Open Inference Protocol JSON with the binary tensor data extension.

The request body is a JSON object, optionally followed by tensor bytes; the
``Inference-Header-Content-Length`` header then gives the JSON's length. Tensors in
the binary part are little-endian, row-major, unpadded; BYTES elements carry a
4-byte little-endian length prefix.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import orjson

from wonderland.inference.errors import InvalidInputError
from wonderland.inference.types import (
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    RequestedOutput,
    bytes_array,
    new_id,
    numpy_dtype,
    tensor_from_data,
)

__all__ = [
    "decode_bytes_tensor",
    "decode_v2_request",
    "encode_bytes_tensor",
    "encode_v2_response",
    "parse_json",
    "tensor_from_data",
]

_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY


def parse_json(body: bytes | memoryview, where: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"{where}: body is not valid JSON ({exc})") from None


def _shape(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise InvalidInputError(f"{where}: 'shape' must be a list of non-negative integers")
    return value


def decode_bytes_tensor(buf: bytes | memoryview, count: int, where: str) -> list[bytes]:
    """Split a length-prefixed BYTES buffer into ``count`` elements."""
    mv = memoryview(buf)
    out: list[bytes] = []
    pos = 0
    end = len(mv)
    while pos < end:
        if pos + 4 > end:
            raise InvalidInputError(f"{where}: BYTES data ends inside a 4-byte length prefix")
        (n,) = struct.unpack_from("<I", mv, pos)
        pos += 4
        if pos + n > end:
            raise InvalidInputError(f"{where}: BYTES element {len(out)} runs past the data")
        out.append(bytes(mv[pos : pos + n]))
        pos += n
    if len(out) != count:
        raise InvalidInputError(f"{where}: shape needs {count} BYTES elements, data has {len(out)}")
    return out


def encode_bytes_tensor(array: np.ndarray[Any, Any]) -> bytes:
    parts: list[bytes] = []
    for x in array.reshape(-1):
        b = x if isinstance(x, bytes) else str(x).encode("utf-8")
        parts.append(struct.pack("<I", len(b)))
        parts.append(b)
    return b"".join(parts)


def tensor_from_buffer(
    buf: memoryview, shape: list[int], datatype: str, where: str
) -> np.ndarray[Any, Any]:
    """A numpy array viewing ``buf`` (no copy), checked against ``shape``."""
    dtype = numpy_dtype(datatype, f" in {where}")
    count = math.prod(shape)
    if datatype == "BYTES":
        return bytes_array(decode_bytes_tensor(buf, count, where), shape)
    if len(buf) != count * dtype.itemsize:
        raise InvalidInputError(
            f"{where}: shape {shape} of {datatype} needs {count * dtype.itemsize} bytes "
            f"but {len(buf)} were sent"
        )
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def decode_v2_request(
    body: bytes, header_length: int | None, model_name: str, model_version: str | None
) -> InferRequest:
    """Decode an OIP REST inference request (JSON, or JSON + binary tensors)."""
    if header_length is not None:
        if header_length < 0 or header_length > len(body):
            raise InvalidInputError(
                f"Inference-Header-Content-Length is {header_length} but the body has "
                f"{len(body)} bytes"
            )
        view = memoryview(body)
        doc = parse_json(view[:header_length], "inference request")
        binary = view[header_length:]
    else:
        doc = parse_json(body, "inference request")
        binary = None
    if not isinstance(doc, dict):
        raise InvalidInputError("inference request: body must be a JSON object with 'inputs'")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInputError("inference request: 'inputs' must be a non-empty list of tensors")
    offset = 0
    inputs: list[InferInput] = []
    for i, t in enumerate(raw_inputs):
        if not isinstance(t, dict):
            raise InvalidInputError(f"inputs[{i}] must be an object")
        name = t.get("name")
        where = f"inputs[{i}] ({name!r})" if name else f"inputs[{i}]"
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"{where}: 'name' is missing")
        datatype = t.get("datatype")
        if not isinstance(datatype, str):
            raise InvalidInputError(f"{where}: 'datatype' is missing")
        shape = _shape(t.get("shape"), where)
        params = t.get("parameters") or {}
        if not isinstance(params, dict):
            raise InvalidInputError(f"{where}: 'parameters' must be an object")
        size = params.get("binary_data_size")
        if size is not None:
            if binary is None:
                raise InvalidInputError(
                    f"{where}: binary_data_size is set but the request has no "
                    "Inference-Header-Content-Length header"
                )
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise InvalidInputError(
                    f"{where}: binary_data_size {size} runs past the {len(binary)} binary bytes"
                )
            arr = tensor_from_buffer(binary[offset : offset + size], shape, datatype, where)
            offset += size
            params = {k: v for k, v in params.items() if k != "binary_data_size"}
        else:
            if "data" not in t:
                raise InvalidInputError(f"{where}: 'data' is missing")
            arr = tensor_from_data(t["data"], shape, datatype, where)
        inputs.append(InferInput(name, shape, datatype, arr, params))
    req_outputs = doc.get("outputs")
    outputs: list[RequestedOutput] | None = None
    if req_outputs is not None:
        if not isinstance(req_outputs, list):
            raise InvalidInputError("inference request: 'outputs' must be a list")
        outputs = []
        for j, o in enumerate(req_outputs):
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise InvalidInputError(f"outputs[{j}] must be an object with a 'name'")
            outputs.append(RequestedOutput(o["name"], o.get("parameters") or {}))
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInputError("inference request: 'parameters' must be an object")
    rid = doc.get("id")
    return InferRequest(
        model_name=model_name,
        inputs=inputs,
        id=str(rid) if rid is not None else None,
        parameters=parameters,
        outputs=outputs,
        model_version=model_version,
    )


def select_outputs(
    outputs: list[InferOutput], requested: list[RequestedOutput] | None
) -> list[tuple[InferOutput, RequestedOutput | None]]:
    """The outputs to send, in the requested order; a 400 for a name the model lacks."""
    if not requested:
        return [(o, None) for o in outputs]
    by_name = {o.name: o for o in outputs}
    chosen: list[tuple[InferOutput, RequestedOutput | None]] = []
    for r in requested:
        out = by_name.get(r.name)
        if out is None:
            raise InvalidInputError(
                f"requested output {r.name!r} is not produced by the model; "
                f"outputs are {list(by_name)}"
            )
        chosen.append((out, r))
    return chosen


def _json_data(out: InferOutput) -> Any:
    arr = out.data
    if out.datatype == "BYTES":
        items = []
        for x in arr.reshape(-1):
            if isinstance(x, bytes):
                try:
                    items.append(x.decode("utf-8"))
                except UnicodeDecodeError:
                    raise InvalidInputError(
                        f"output {out.name!r} holds non-UTF-8 bytes; ask for it with "
                        "binary_data=true"
                    ) from None
            else:
                items.append(str(x))
        return items
    if out.datatype == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32).reshape(-1)
    flat = arr.reshape(-1)
    if not flat.flags.c_contiguous or flat.dtype.byteorder == ">":
        flat = np.ascontiguousarray(flat, dtype=flat.dtype.newbyteorder("="))
    return flat


def encode_v2_response(response: InferResponse, request: InferRequest) -> tuple[bytes, int | None]:
    """Encode a response; returns the body and, when binary tensors follow, the JSON length."""
    default_binary = bool(request.parameters.get("binary_data_output", False))
    out_docs = []
    blobs: list[bytes] = []
    for out, req in select_outputs(response.outputs, request.outputs):
        binary = default_binary
        if req is not None and "binary_data" in req.parameters:
            binary = bool(req.parameters["binary_data"])
        doc: dict[str, Any] = {"name": out.name, "datatype": out.datatype, "shape": out.shape}
        params = dict(out.parameters)
        if binary:
            if out.datatype == "BYTES":
                blob = encode_bytes_tensor(out.data)
            else:
                blob = np.ascontiguousarray(
                    out.data, dtype=out.data.dtype.newbyteorder("<")
                ).tobytes()
            params["binary_data_size"] = len(blob)
            blobs.append(blob)
        else:
            doc["data"] = _json_data(out)
        if params:
            doc["parameters"] = params
        out_docs.append(doc)
    body: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version:
        body["model_version"] = response.model_version
    body["id"] = response.id or request.id or new_id()
    if response.parameters:
        body["parameters"] = response.parameters
    body["outputs"] = out_docs
    head = orjson.dumps(body, option=_JSON_OPTS)
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)
