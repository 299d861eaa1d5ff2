"""REST and gRPC tensor codecs: every datatype, nested and flat data, binary and raw forms."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from wonderland.inference._generated import grpc_predict_v2_pb2 as pb
from wonderland.inference.codec_grpc import decode_grpc_request, encode_grpc_response
from wonderland.inference.codec_rest import decode_v2_request, encode_v2_response
from wonderland.inference.errors import InvalidInputError
from wonderland.inference.types import InferOutput, InferResponse, RequestedOutput

NUMERIC = {
    "BOOL": [True, False, True, True],
    "UINT8": [0, 1, 254, 255],
    "UINT16": [0, 1, 65534, 65535],
    "UINT32": [0, 1, 2, 4294967295],
    "UINT64": [0, 1, 2, 18446744073709551615],
    "INT8": [-128, -1, 0, 127],
    "INT16": [-32768, -1, 0, 32767],
    "INT32": [-(2**31), -1, 0, 2**31 - 1],
    "INT64": [-(2**63), -1, 0, 2**63 - 1],
    "FP16": [0.5, -1.25, 2.0, 3.0],
    "FP32": [0.5, -1.25, 2.0, 3.5],
    "FP64": [0.1, -1.25, 2.0, 1e300],
}


def _request(inputs: list[dict[str, object]], **extra: object) -> bytes:
    return orjson.dumps({"inputs": inputs, **extra})


@pytest.mark.parametrize("datatype", sorted(NUMERIC))
def test_json_data_flat_and_nested_decode_to_the_same_array(datatype: str) -> None:
    values = NUMERIC[datatype]
    flat = decode_v2_request(
        _request([{"name": "x", "shape": [2, 2], "datatype": datatype, "data": values}]),
        None,
        "m",
        None,
    )
    nested = decode_v2_request(
        _request(
            [{"name": "x", "shape": [2, 2], "datatype": datatype, "data": [values[:2], values[2:]]}]
        ),
        None,
        "m",
        None,
    )
    a, b = flat.inputs[0].as_numpy(), nested.inputs[0].as_numpy()
    assert a.shape == (2, 2) and b.shape == (2, 2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a.reshape(-1), np.array(values, dtype=a.dtype))


def test_bytes_json_decodes_to_utf8_bytes() -> None:
    req = decode_v2_request(
        _request([{"name": "t", "shape": [2], "datatype": "BYTES", "data": ["héllo", "x"]}]),
        None,
        "m",
        None,
    )
    assert req.inputs[0].as_numpy().tolist() == ["héllo".encode(), b"x"]
    assert req.inputs[0].as_string() == ["héllo", "x"]


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        ({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]}, "needs 4"),
        ({"name": "x", "shape": [1], "datatype": "FLOAT", "data": [1]}, "unknown datatype"),
        ({"name": "x", "shape": [1], "datatype": "FP32"}, "'data' is missing"),
        ({"name": "x", "shape": [1], "datatype": "INT8", "data": [1000]}, "does not fit"),
        ({"name": "x", "shape": [1], "datatype": "FP32", "data": ["a"]}, "does not fit"),
        ({"name": "x", "shape": [-1], "datatype": "FP32", "data": [1]}, "non-negative"),
        ({"shape": [1], "datatype": "FP32", "data": [1]}, "'name' is missing"),
    ],
)
def test_bad_tensors_are_client_errors_that_say_what_is_wrong(
    tensor: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        decode_v2_request(_request([tensor]), None, "m", None)


def test_malformed_json_is_a_client_error() -> None:
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        decode_v2_request(b"{nope", None, "m", None)
    with pytest.raises(InvalidInputError, match="'inputs'"):
        decode_v2_request(b'{"inputs": []}', None, "m", None)


def _binary_body(
    tensors: list[tuple[dict[str, object], bytes]], **extra: object
) -> tuple[bytes, int]:
    head = []
    blobs = []
    for doc, blob in tensors:
        head.append({**doc, "parameters": {"binary_data_size": len(blob)}})
        blobs.append(blob)
    js = orjson.dumps({"inputs": head, **extra})
    return js + b"".join(blobs), len(js)


def test_binary_extension_decodes_numeric_fp16_bf16_and_bytes_without_json_data() -> None:
    fp16 = np.array([[1.5, -2.0]], dtype="<f2")
    bf16 = np.array([0x3F80, 0x4000], dtype="<u2")  # 1.0, 2.0 as bfloat16 words
    texts = [b"ab", b"", b"\xff\x00"]
    bytes_blob = b"".join(struct.pack("<I", len(t)) + t for t in texts)
    body, n = _binary_body(
        [
            ({"name": "h", "shape": [1, 2], "datatype": "FP16"}, fp16.tobytes()),
            ({"name": "b", "shape": [2], "datatype": "BF16"}, bf16.tobytes()),
            ({"name": "s", "shape": [3], "datatype": "BYTES"}, bytes_blob),
        ]
    )
    req = decode_v2_request(body, n, "m", None)
    np.testing.assert_array_equal(req.inputs[0].as_numpy(), fp16)
    np.testing.assert_array_equal(req.inputs[1].as_numpy(), bf16)
    assert req.inputs[2].as_numpy().tolist() == texts


def test_binary_size_that_disagrees_with_shape_is_rejected() -> None:
    body, n = _binary_body([({"name": "x", "shape": [3], "datatype": "FP32"}, b"\0" * 8)])
    with pytest.raises(InvalidInputError, match="needs 12 bytes"):
        decode_v2_request(body, n, "m", None)
    with pytest.raises(InvalidInputError, match="Inference-Header-Content-Length"):
        decode_v2_request(body, len(body) + 5, "m", None)


def test_response_echoes_id_and_honours_binary_output_requests() -> None:
    req = decode_v2_request(
        _request(
            [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}],
            id="req-7",
            outputs=[{"name": "b", "parameters": {"binary_data": True}}, {"name": "a"}],
        ),
        None,
        "m",
        None,
    )
    a = InferOutput.from_numpy("a", np.array([1.5, 2.5], dtype=np.float32))
    b = InferOutput.from_numpy("b", np.array([[1, 2]], dtype=np.int64))
    c = InferOutput.from_numpy("c", np.array([9]))
    body, json_len = encode_v2_response(InferResponse("m", [a, b, c]), req)
    assert json_len is not None
    head = orjson.loads(body[:json_len])
    assert head["id"] == "req-7"
    assert [o["name"] for o in head["outputs"]] == ["b", "a"]  # requested order, c left out
    assert head["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert "data" not in head["outputs"][0]
    assert head["outputs"][1]["data"] == [1.5, 2.5]
    np.testing.assert_array_equal(np.frombuffer(body[json_len:], "<i8"), [1, 2])


def test_unknown_requested_output_is_a_client_error() -> None:
    req = decode_v2_request(
        _request(
            [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}],
            outputs=[{"name": "nope"}],
        ),
        None,
        "m",
        None,
    )
    out = InferOutput.from_numpy("output-0", np.array([1]))
    with pytest.raises(InvalidInputError, match="nope"):
        encode_v2_response(InferResponse("m", [out]), req)


def test_binary_data_output_parameter_makes_all_outputs_binary() -> None:
    req = decode_v2_request(
        _request(
            [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}],
            parameters={"binary_data_output": True},
        ),
        None,
        "m",
        None,
    )
    out = InferOutput.from_numpy("s", np.array(["hi", "there"]))
    body, json_len = encode_v2_response(InferResponse("m", [out]), req)
    assert json_len is not None
    assert body[json_len:] == struct.pack("<I", 2) + b"hi" + struct.pack("<I", 5) + b"there"


def test_grpc_contents_and_raw_decode_alike_and_response_follows_the_request() -> None:
    x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    typed = pb.ModelInferRequest(model_name="m", id="g1")
    t = typed.inputs.add(name="x", datatype="FP32", shape=[2, 2])
    t.contents.fp32_contents.extend(x.reshape(-1).tolist())
    raw = pb.ModelInferRequest(model_name="m")
    raw.inputs.add(name="x", datatype="FP32", shape=[2, 2])
    raw.raw_input_contents.append(x.tobytes())
    a, b = decode_grpc_request(typed), decode_grpc_request(raw)
    np.testing.assert_array_equal(a.inputs[0].as_numpy(), x)
    np.testing.assert_array_equal(b.inputs[0].as_numpy(), x)
    out = InferResponse("m", [InferOutput.from_numpy("y", np.array([7, 8], dtype=np.int64))])
    typed_reply = encode_grpc_response(out, a)
    assert typed_reply.id == "g1"
    assert list(typed_reply.outputs[0].contents.int64_contents) == [7, 8]
    raw_reply = encode_grpc_response(out, b)
    assert np.frombuffer(raw_reply.raw_output_contents[0], "<i8").tolist() == [7, 8]


def test_grpc_raw_entries_must_match_inputs() -> None:
    raw = pb.ModelInferRequest(model_name="m")
    raw.inputs.add(name="x", datatype="FP32", shape=[1])
    raw.inputs.add(name="y", datatype="FP32", shape=[1])
    raw.raw_input_contents.append(b"\0\0\0\0")
    with pytest.raises(InvalidInputError, match="one per input"):
        decode_grpc_request(raw)


def test_requested_output_carries_parameters() -> None:
    r = RequestedOutput("a", {"binary_data": False})
    assert r.parameters["binary_data"] is False
