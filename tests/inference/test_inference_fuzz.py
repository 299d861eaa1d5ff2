"""Fuzzing the model server's Open Inference Protocol APIs (REST and gRPC) with hypothesis.

The seeds are what the real clients send: tritonclient's HTTP request bodies (JSON and the
binary tensor extension) and the ``ModelInferRequest`` messages tritonclient's gRPC client
puts on the wire (captured by a recording gRPC server). Each example changes a seed a few
times; the server must answer every one with a 2xx or a 4xx carrying an error message (a
gRPC status other than UNKNOWN, INTERNAL or UNAVAILABLE), and after the run it must still
answer and hold no more tasks than before. ``WONDERLAND_FUZZ_PROFILE=long`` (bench/fuzz)
runs many more examples.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from _support.daemon import wait_for
from _support.fuzz import (
    FUZZ,
    GRPC_BAD_CODES,
    NOT_A_MESSAGE,
    LoopThread,
    grpc_call,
    loop_thread,
    mutated,
    parses,
)
from hypothesis import example, given
from hypothesis import strategies as st

from wonderland.inference._generated import grpc_predict_v2_pb2 as pb
from wonderland.inference.dataplane import DataPlane
from wonderland.inference.grpc_server import create_grpc_server
from wonderland.inference.repository import ModelRepository
from wonderland.inference.rest import RestApp

INFER = "/inference.GRPCInferenceService/ModelInfer"
GRPC_REQUESTS = {
    f"/inference.GRPCInferenceService/{m.name}": m.input_type.full_name
    for m in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods
}


def _triton_http_seeds() -> list[bytes]:
    """Request bodies exactly as tritonclient.http builds them."""
    seeds = []
    rows = np.array([[6.8, 2.8, 4.8, 1.4], [5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
    for binary in (False, True):
        tensor = triton_http.InferInput("input-0", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows, binary_data=binary)
        outputs = [triton_http.InferRequestedOutput("output-0", binary_data=binary)]
        body, _ = triton_http.InferenceServerClient.generate_request_body(
            [tensor], outputs=outputs, request_id="seed", parameters={"p": 1}
        )
        seeds.append(body)
    text = triton_http.InferInput("input-0", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"a", b"bc"], dtype=object), binary_data=True)
    seeds.append(triton_http.InferenceServerClient.generate_request_body([text])[0])
    return seeds


class _Recorder(grpc.GenericRpcHandler):
    """A gRPC server that keeps the bytes of every request and answers an empty message."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.requests.append(request)
            return b""

        return grpc.unary_unary_rpc_method_handler(handle)


def _triton_grpc_seeds() -> list[bytes]:
    """``ModelInferRequest`` bytes as tritonclient.grpc sends them (recorded on the wire)."""
    recorder = _Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[recorder])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        client = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")
        rows = np.array([[6.8, 2.8, 4.8, 1.4]], dtype=np.float32)
        tensor = triton_grpc.InferInput("input-0", [1, 4], "FP32")
        tensor.set_data_from_numpy(rows)
        client.infer("iris", [tensor], request_id="seed")
        text = triton_grpc.InferInput("input-0", [2], "BYTES")
        text.set_data_from_numpy(np.array([b"a", b"bc"], dtype=object))
        client.infer("iris", [text], model_version="1")
        client.close()
    finally:
        server.stop(None)
    return list(recorder.requests)


HTTP_SEEDS = _triton_http_seeds()
GRPC_SEEDS = _triton_grpc_seeds()
V1_SEEDS: list[Any] = [{"instances": [[6.8, 2.8, 4.8, 1.4]]}, {"inputs": [[1, 2, 3, 4]]}]


@dataclass
class ModelServer:
    loop: LoopThread
    client: httpx.AsyncClient
    channel: grpc.Channel

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.loop.run(self.client.post(path, content=body, headers=headers or {}))

    def request(self, method: str, path: str, body: bytes = b"") -> httpx.Response:
        return self.loop.run(self.client.request(method, path, content=body))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, iris_dir: Path) -> Iterator[ModelServer]:
    root = tmp_path_factory.mktemp("fuzz-repo")
    for version in ("1", "2"):
        (root / "iris" / version).mkdir(parents=True)
        shutil.copy(iris_dir / "model.joblib", root / "iris" / version / "model.joblib")
    with loop_thread() as lt:

        async def start() -> tuple[ModelRepository, Any, int, httpx.AsyncClient]:
            repo = ModelRepository(root=root)
            await repo.load_all()
            dataplane = DataPlane(repo)
            grpc_server = create_grpc_server(dataplane, max_receive_message_length=1 << 20)
            port = await grpc_server.start("127.0.0.1", 0)
            app = RestApp(dataplane, max_request_size=1 << 20)
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://fuzz"
            )
            return repo, grpc_server, port, client

        repo, grpc_server, port, client = lt.run(start())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        before = _connection_tasks(lt)
        try:
            yield ModelServer(lt, client, channel)
            # Still serving, and nothing left behind by the malformed requests.
            assert lt.run(client.get("/v2/health/ready")).status_code == 200
            code, _, _ = grpc_call(channel, INFER, GRPC_SEEDS[0])
            assert code == grpc.StatusCode.OK
            channel.close()
            wait_for(
                lambda: _connection_tasks(lt) == before, 10, "closed connections' tasks to end"
            )
        finally:
            lt.run(client.aclose())
            lt.run(grpc_server.stop(0))
            lt.run(repo.close())


def _connection_tasks(lt: LoopThread) -> list[str]:
    # A model version's batcher is one task for the version's life, bounded by the models.
    return [t for t in lt.tasks() if "AdaptiveBatcher" not in t]


def _check_http(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400:
        assert orjson.loads(r.content)["error"], r.text


def _binary_header(body: bytes) -> dict[str, str]:
    end = body.find(b"}\x00")
    if end < 0:
        end = body.rfind(b"}")
    return {"Inference-Header-Content-Length": str(end + 1)} if b"\x00" in body else {}


@FUZZ
@given(
    seed=st.sampled_from(HTTP_SEEDS),
    doc_changes=st.data(),
    tail=st.binary(max_size=64),
    header=st.one_of(
        st.none(),
        st.integers(-5, 400).map(str),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=6),
    ),
)
@example(seed=HTTP_SEEDS[1], doc_changes=None, tail=b"", header="99999999")
@example(seed=HTTP_SEEDS[1], doc_changes=None, tail=b"", header="-1")
@example(seed=HTTP_SEEDS[1], doc_changes=None, tail=b"", header="x")
def test_v2_infer_answers_every_mutated_tritonclient_request_with_a_4xx_or_2xx(
    server: ModelServer, seed: bytes, doc_changes: Any, tail: bytes, header: str | None
) -> None:
    headers = _binary_header(seed)
    body = seed
    if doc_changes is not None:
        cut = int(headers.get("Inference-Header-Content-Length", len(seed)))
        doc = doc_changes.draw(mutated([orjson.loads(seed[:cut])]))
        head = json.dumps(doc).encode()
        body = head + seed[cut:] + tail
        if headers:
            headers["Inference-Header-Content-Length"] = str(len(head))
    if header is not None:
        headers["Inference-Header-Content-Length"] = header
    _check_http(server.post("/v2/models/iris/infer", body, headers))


@FUZZ
@given(doc=mutated(V1_SEEDS), verb=st.sampled_from(["predict", "explain"]))
def test_v1_predict_answers_every_mutated_request_with_a_4xx_or_2xx(
    server: ModelServer, doc: Any, verb: str
) -> None:
    r = server.post(f"/v1/models/iris:{verb}", json.dumps(doc).encode())
    if verb == "explain" and r.status_code == 501:  # KServe's answer: no explainer here
        return
    _check_http(r)


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    path=st.lists(
        st.sampled_from(
            [
                "v1",
                "v2",
                "models",
                "iris",
                "versions",
                "1",
                "9",
                "infer",
                "ready",
                "config",
                "repository",
                "index",
                "load",
                "unload",
                "iris:predict",
                "",
                "..",
                "%00",
                "\u00e9",
            ]
        ),
        max_size=6,
    ),
    body=st.binary(max_size=32),
)
def test_any_path_and_method_is_answered_without_a_5xx(
    server: ModelServer, method: str, path: list[str], body: bytes
) -> None:
    r = server.request(method, "/" + "/".join(path).lstrip("/"), body)
    assert r.status_code < 500, (method, path, r.status_code, r.text)


def _mutate_infer(data: st.DataObject, seed: bytes) -> bytes:
    msg = pb.ModelInferRequest.FromString(seed)
    for _ in range(data.draw(st.integers(1, 3))):
        what = data.draw(
            st.sampled_from(
                ["shape", "datatype", "raw", "contents", "drop_raw", "name", "outputs", "params"]
            )
        )
        tensor = msg.inputs[0] if msg.inputs else msg.inputs.add()
        if what == "shape":
            tensor.ClearField("shape")
            tensor.shape.extend(data.draw(st.lists(st.integers(-3, 2**62), max_size=4)))
        elif what == "datatype":
            tensor.datatype = data.draw(
                st.sampled_from(["FP16", "BF16", "BYTES", "INT8", "BOOL", "UINT64", "X"])
            )
        elif what == "raw" and msg.raw_input_contents:
            msg.raw_input_contents[0] = data.draw(st.binary(max_size=40))
        elif what == "contents":
            tensor.contents.fp32_contents.extend(
                data.draw(st.lists(st.floats(width=32), max_size=8))
            )
            tensor.contents.bytes_contents.extend(
                data.draw(st.lists(st.binary(max_size=4), max_size=3))
            )
        elif what == "drop_raw":
            msg.ClearField("raw_input_contents")
        elif what == "name":
            tensor.name = data.draw(st.text(max_size=8))
        elif what == "outputs":
            msg.outputs.add().name = data.draw(st.text(max_size=8))
        else:
            msg.parameters[data.draw(st.text(max_size=8))].string_param = "x"
    return bytes(msg.SerializeToString())


@FUZZ
@given(seed=st.sampled_from(GRPC_SEEDS), data=st.data())
def test_grpc_model_infer_answers_every_mutated_tritonclient_request(
    server: ModelServer, seed: bytes, data: st.DataObject
) -> None:
    code, details, _ = grpc_call(server.channel, INFER, _mutate_infer(data, seed))
    assert code not in GRPC_BAD_CODES, (code, details)
    if code != grpc.StatusCode.OK:
        assert details


@FUZZ
@given(method=st.sampled_from(sorted(GRPC_REQUESTS)), payload=st.binary(max_size=64))
def test_grpc_methods_answer_arbitrary_bytes_with_a_client_error(
    server: ModelServer, method: str, payload: bytes
) -> None:
    code, details, _ = grpc_call(server.channel, method, payload)
    if not parses(GRPC_REQUESTS[method], payload):
        assert (code, details) == NOT_A_MESSAGE
        return
    assert code not in GRPC_BAD_CODES, (method, payload, code, details)
