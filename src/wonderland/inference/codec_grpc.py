"""gRPC codecs: ``inference.ModelInferRequest``/``Response`` to and from our types.

Inputs come as typed ``contents`` or as ``raw_input_contents`` (one little-endian,
row-major buffer per input, read with ``np.frombuffer`` without a copy). Outputs go back
the way the request came, and always raw for FP16 and BF16.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from wonderland.inference._generated import grpc_predict_v2_pb2 as pb
from wonderland.inference.codec_rest import (
    decode_bytes_tensor,
    encode_bytes_tensor,
    select_outputs,
)
from wonderland.inference.errors import InvalidInputError
from wonderland.inference.types import (
    InferInput,
    InferRequest,
    InferResponse,
    RequestedOutput,
    bytes_array,
    new_id,
    numpy_dtype,
)

__all__ = ["decode_grpc_request", "encode_grpc_response", "params_from_pb", "params_to_pb"]

_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def params_from_pb(params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, p in params.items():
        which = p.WhichOneof("parameter_choice")
        out[key] = getattr(p, which) if which else None
    return out


def params_to_pb(target: Any, params: dict[str, Any]) -> None:
    for key, value in params.items():
        p = target[key]
        if isinstance(value, bool):
            p.bool_param = value
        elif isinstance(value, int):
            p.int64_param = value
        elif isinstance(value, float):
            p.double_param = value
        else:
            p.string_param = str(value)


def decode_grpc_request(request: Any) -> InferRequest:
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInputError(
            f"raw_input_contents has {len(raw)} entries but there are "
            f"{len(request.inputs)} inputs; send one per input, in input order"
        )
    inputs = []
    for i, t in enumerate(request.inputs):
        where = f"inputs[{i}] ({t.name!r})"
        if not t.name:
            raise InvalidInputError(f"inputs[{i}]: 'name' is missing")
        shape = list(t.shape)
        if any(d < 0 for d in shape):
            raise InvalidInputError(f"{where}: shape {shape} has a negative dimension")
        dtype = numpy_dtype(t.datatype, f" in {where}")
        count = math.prod(shape)
        if raw:
            buf = memoryview(raw[i])
            if t.datatype == "BYTES":
                arr = bytes_array(decode_bytes_tensor(buf, count, where), shape)
            else:
                if len(buf) != count * dtype.itemsize:
                    raise InvalidInputError(
                        f"{where}: shape {shape} of {t.datatype} needs "
                        f"{count * dtype.itemsize} raw bytes but {len(buf)} were sent"
                    )
                arr = np.frombuffer(buf, dtype=dtype).reshape(shape)
        else:
            field = _CONTENTS_FIELD.get(t.datatype)
            if field is None:
                raise InvalidInputError(
                    f"{where}: {t.datatype} has no typed contents field; send it in "
                    "raw_input_contents"
                )
            values = getattr(t.contents, field)
            if len(values) != count:
                raise InvalidInputError(
                    f"{where}: shape {shape} needs {count} elements but contents.{field} "
                    f"has {len(values)}"
                )
            if t.datatype == "BYTES":
                arr = bytes_array(list(values), shape)
            else:
                try:
                    arr = np.array(values, dtype=dtype).reshape(shape)
                except OverflowError as exc:
                    raise InvalidInputError(f"{where}: {exc}") from None
        inputs.append(InferInput(t.name, shape, t.datatype, arr, params_from_pb(t.parameters)))
    outputs = [RequestedOutput(o.name, params_from_pb(o.parameters)) for o in request.outputs]
    return InferRequest(
        model_name=request.model_name,
        inputs=inputs,
        id=request.id or None,
        parameters=params_from_pb(request.parameters),
        outputs=outputs or None,
        model_version=request.model_version or None,
        from_grpc=True,
        raw_grpc=bool(raw),
    )


def encode_grpc_response(response: InferResponse, request: InferRequest) -> Any:
    chosen = select_outputs(response.outputs, request.outputs)
    use_raw = request.raw_grpc or any(o.datatype in ("FP16", "BF16") for o, _ in chosen)
    msg = pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version or "",
        id=response.id or request.id or new_id(),
    )
    if response.parameters:
        params_to_pb(msg.parameters, response.parameters)
    raw_out = []
    for out, _ in chosen:
        t = msg.outputs.add(name=out.name, datatype=out.datatype, shape=out.shape)
        if out.parameters:
            params_to_pb(t.parameters, out.parameters)
        if use_raw:
            if out.datatype == "BYTES":
                raw_out.append(encode_bytes_tensor(out.data))
            else:
                arr = np.ascontiguousarray(out.data, dtype=out.data.dtype.newbyteorder("<"))
                raw_out.append(arr.tobytes())
        else:
            field = _CONTENTS_FIELD[out.datatype]
            flat = out.data.reshape(-1)
            if out.datatype == "BYTES":
                values: Any = [x if isinstance(x, bytes) else str(x).encode("utf-8") for x in flat]
            else:
                values = flat.tolist()
            getattr(t.contents, field).extend(values)
    if raw_out:
        msg.raw_output_contents.extend(raw_out)
    return msg
