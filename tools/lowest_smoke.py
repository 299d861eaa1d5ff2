"""The smoke test of the lowest-versions check (``tools/lowest_versions.py``), run by the
throwaway environment's Python: imports, a sidecar and a model server, with nothing but the
base package and its component extras installed."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

import wonderland

# Extras outside the base and [all]: a module that needs one of these is skipped.
OPTIONAL = {
    "boto3",
    "botocore",
    "joblib",
    "kubernetes",
    "lightgbm",
    "mlflow",
    "onnx",
    "onnxruntime",
    "opentelemetry",
    "optuna",
    "scipy",
    "sentence_transformers",
    "skops",
    "sklearn",
    "tokenizers",
    "torch",
    "transformers",
    "xgboost",
}

MODEL = """
import numpy as np


class Doubler:
    def __init__(self, name):
        self.name = name
        self.ready = False

    def load(self):
        self.ready = True

    def predict(self, payload, headers=None):
        return payload.inputs[0].as_numpy() * 2
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{what}: the process exited with {proc.returncode}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextmanager
def process(args: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wonderland", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env},
        )
    try:
        yield proc
    except BaseException:
        sys.stderr.write(log.read_text(errors="replace")[-3000:])
        raise
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(15)


def imports() -> int:
    count, skipped = 0, []
    for info in pkgutil.walk_packages(wonderland.__path__, "wonderland."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as exc:
            if (exc.name or "").partition(".")[0] not in OPTIONAL:
                raise
            skipped.append(info.name)
            continue
        count += 1
    print(f"imports: {count} modules, {len(skipped)} skipped (optional extras)")
    return count


def sidecar(tmp: Path, http: int, grpc: int) -> None:
    from dapr.clients import DaprClient

    args = ["sidecar", "--app-id", "smoke", "-H", str(http), "-G", str(grpc), "-M", "0"]
    with process(args, tmp / "sidecar.log", {"WONDERLAND_HOME": str(tmp / "home")}) as proc:
        base = f"http://127.0.0.1:{http}/v1.0"
        wait_for(lambda: httpx.get(base + "/healthz").status_code == 204, "the sidecar", proc)
        r = httpx.post(base + "/state/statestore", json=[{"key": "k", "value": {"n": 1}}])
        assert r.status_code == 204, r.text
        assert httpx.get(base + "/state/statestore/k").json() == {"n": 1}
        assert httpx.post(base + "/publish/pubsub/orders", json={"n": 2}).status_code == 204
        with DaprClient() as client:
            client.save_state("statestore", "g", "over grpc")
            assert client.get_state("statestore", "g").data == b"over grpc"
    print("sidecar: HTTP state and pub/sub, gRPC state through the Dapr SDK")


def model_server(tmp: Path) -> None:
    from wonderland.inference._generated import grpc_predict_v2_pb2 as pb
    from wonderland.inference._generated import grpc_predict_v2_pb2_grpc as pb_grpc

    model = tmp / "doubler"
    model.mkdir()
    (model / "model.py").write_text(MODEL)
    http, grpc = free_port(), free_port()
    args = ["serve", "--model_name", "doubler", "--model_dir", str(model)]
    args += ["--http_port", str(http), "--grpc_port", str(grpc)]
    with process(args, tmp / "serve.log", {}) as proc:
        url = f"http://127.0.0.1:{http}"
        wait_for(lambda: httpx.get(url + "/v2/health/ready").status_code == 200, "serve", proc)
        body = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}
        r = httpx.post(url + "/v2/models/doubler/infer", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == [2.0, 4.0]
        import grpc as grpclib

        with grpclib.insecure_channel(f"127.0.0.1:{grpc}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            tensor = pb.ModelInferRequest.InferInputTensor(
                name="x",
                datatype="FP32",
                shape=[2],
                contents=pb.InferTensorContents(fp32_contents=[3, 4]),
            )
            reply = stub.ModelInfer(pb.ModelInferRequest(model_name="doubler", inputs=[tensor]))
        if reply.raw_output_contents:
            data = np.frombuffer(reply.raw_output_contents[0], dtype=np.float32).tolist()
        else:
            data = list(reply.outputs[0].contents.fp32_contents)
        assert data == [6.0, 8.0], data
        metrics = httpx.get(url + "/metrics").text
        assert (
            'inference_requests_total{code="OK",model_name="doubler",protocol="grpc"} 1.0'
            in metrics
        )
    print("model server: REST and gRPC inference, metrics")


def main() -> int:
    from importlib import metadata

    names = ["protobuf", "grpcio", "dapr", "pydantic", "numpy", "uvicorn", "cloudevents"]
    print("versions:", json.dumps({n: metadata.version(n) for n in names}))
    # the Dapr SDK finds its sidecar through these (older SDKs read them once, at import)
    http, grpc = free_port(), free_port()
    os.environ.update(DAPR_HTTP_PORT=str(http), DAPR_GRPC_PORT=str(grpc), DAPR_HEALTH_TIMEOUT="30")
    with tempfile.TemporaryDirectory(prefix="wonderland-smoke-") as tmp:
        imports()
        sidecar(Path(tmp), http, grpc)
        model_server(Path(tmp))
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
