"""A real `wonderland serve` process driven by third-party clients (tritonclient, HTTP)."""

from __future__ import annotations

import json
import shutil
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _support.daemon import wait_for

from .conftest import IRIS_ROWS, ServerProcess, run_server

pytestmark = pytest.mark.e2e

X = np.array(IRIS_ROWS, dtype=np.float32)


def _http(
    server: ServerProcess, method: str, path: str, body: bytes | None = None
) -> tuple[int, Any]:
    req = urllib.request.Request(server.url + path, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_tritonclient_http_binary_default(
    iris_server: ServerProcess, iris_expected: list[int]
) -> None:
    import tritonclient.http as th

    c = th.InferenceServerClient(f"127.0.0.1:{iris_server.http_port}")
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("iris")
    assert c.get_model_metadata("iris")["platform"] == "sklearn"
    inp = th.InferInput("input-0", list(X.shape), "FP32")
    inp.set_data_from_numpy(X)  # binary by default, outputs binary by default
    result = c.infer("iris", [inp], request_id="r-1")
    assert result.as_numpy("output-0").tolist() == iris_expected
    assert result.get_response()["id"] == "r-1"
    assert "binary_data_size" in result.get_response()["outputs"][0]["parameters"]


def test_tritonclient_http_json(iris_server: ServerProcess, iris_expected: list[int]) -> None:
    import tritonclient.http as th

    c = th.InferenceServerClient(f"127.0.0.1:{iris_server.http_port}")
    inp = th.InferInput("input-0", list(X.shape), "FP32")
    inp.set_data_from_numpy(X, binary_data=False)
    out = th.InferRequestedOutput("output-0", binary_data=False)
    result = c.infer("iris", [inp], outputs=[out])
    assert result.as_numpy("output-0").tolist() == iris_expected
    assert result.get_response()["outputs"][0]["data"] == iris_expected


def test_tritonclient_grpc_raw_and_errors(
    iris_server: ServerProcess, iris_expected: list[int]
) -> None:
    import tritonclient.grpc as tg
    from tritonclient.utils import InferenceServerException

    c = tg.InferenceServerClient(iris_server.grpc_address)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("iris")
    assert c.get_server_metadata().name == "wonderland"
    meta = c.get_model_metadata("iris")
    assert meta.platform == "sklearn" and meta.inputs[0].shape == [-1, 4]
    inp = tg.InferInput("input-0", list(X.shape), "FP32")
    inp.set_data_from_numpy(X)
    result = c.infer("iris", [inp], request_id="g-1")
    assert result.as_numpy("output-0").tolist() == iris_expected
    assert result.get_response().id == "g-1"
    with pytest.raises(InferenceServerException) as err:
        c.infer("nope", [inp])
    assert "NOT_FOUND" in str(err.value.status())
    bad = tg.InferInput("input-0", [3, 4], "FP32")
    bad.set_data_from_numpy(X[:2].reshape(2, 4).repeat(2, axis=0)[:3])
    bad._raw_content = b"\0" * 8  # shape and data disagree
    with pytest.raises(InferenceServerException) as err:
        c.infer("iris", [bad])
    assert "INVALID_ARGUMENT" in str(err.value.status())


def test_grpc_typed_contents(iris_server: ServerProcess, iris_expected: list[int]) -> None:
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    with grpc.insecure_channel(iris_server.grpc_address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        req = service_pb2.ModelInferRequest(model_name="iris", id="typed")
        t = req.inputs.add(name="input-0", datatype="FP32", shape=list(X.shape))
        t.contents.fp32_contents.extend(X.reshape(-1).tolist())
        reply = stub.ModelInfer(req, timeout=30)
    assert reply.id == "typed"
    assert list(reply.outputs[0].contents.int64_contents) == iris_expected
    assert not reply.raw_output_contents


def test_plain_http_v1_and_error_statuses(
    iris_server: ServerProcess, iris_expected: list[int]
) -> None:
    code, body = _http(
        iris_server,
        "POST",
        "/v1/models/iris:predict",
        json.dumps({"instances": IRIS_ROWS}).encode(),
    )
    assert (code, body) == (200, {"predictions": iris_expected})
    assert _http(iris_server, "GET", "/v1/models/iris") == (200, {"name": "iris", "ready": True})
    code, body = _http(iris_server, "POST", "/v2/models/iris/infer", b"{oops")
    assert code == 400 and "JSON" in body["error"]
    code, body = _http(iris_server, "POST", "/v2/models/ghost/infer", b"{}")
    assert code == 404 and "ghost" in body["error"]
    code, body = _http(iris_server, "POST", "/v2/models/iris/versions/3/infer", b"{}")
    assert code == 404
    with urllib.request.urlopen(iris_server.url + "/metrics", timeout=30) as r:
        assert b"request_predict_seconds" in r.read()


def test_max_request_size_answers_413(iris_dir: Path, tmp_path: Path) -> None:
    args = ["--model_name", "iris", "--model_dir", str(iris_dir), "--max_request_size", "1000"]
    with run_server(args, tmp_path) as server:
        code, body = _http(server, "POST", "/v2/models/iris/infer", b" " * 2000)
        assert code == 413 and "limit" in body["error"]


def test_grpc_message_size_limit_is_resource_exhausted(iris_dir: Path, tmp_path: Path) -> None:
    import tritonclient.grpc as tg
    from tritonclient.utils import InferenceServerException

    args = [
        "--model_name",
        "iris",
        "--model_dir",
        str(iris_dir),
        "--grpc_max_receive_message_length",
        "4096",
    ]
    with run_server(args, tmp_path) as server:
        c = tg.InferenceServerClient(server.grpc_address)
        big = np.zeros((2000, 4), dtype=np.float32)
        inp = tg.InferInput("input-0", list(big.shape), "FP32")
        inp.set_data_from_numpy(big)
        with pytest.raises(InferenceServerException) as err:
            c.infer("iris", [inp])
        assert "RESOURCE_EXHAUSTED" in str(err.value.status())


CUSTOM = textwrap.dedent(
    """
    class Echo:
        def __init__(self, name):
            self.name = name

        def load(self):
            pass

        def predict(self, payload, headers=None):
            return {"predictions": payload["instances"], "from": "echo"}
    """
)


def test_model_repository_with_load_unload_over_http_and_grpc(
    iris_dir: Path, tmp_path: Path, iris_expected: list[int]
) -> None:
    import tritonclient.grpc as tg
    import tritonclient.http as th

    root = tmp_path / "models"
    (root / "iris").mkdir(parents=True)
    shutil.copy(iris_dir / "model.joblib", root / "iris" / "model.joblib")
    (root / "echo").mkdir()
    (root / "echo" / "model.py").write_text(CUSTOM)
    with run_server(["--model-repository", str(root)], tmp_path) as server:
        code, body = _http(server, "POST", "/v1/models/echo:predict", b'{"instances": [1, 2]}')
        assert body == {"predictions": [1, 2], "from": "echo"}
        h = th.InferenceServerClient(f"127.0.0.1:{server.http_port}")
        h.unload_model("iris")
        assert not any(
            m.get("state") == "READY" and m["name"] == "iris"
            for m in h.get_model_repository_index()
        )
        assert _http(server, "GET", "/v2/models/iris/ready")[0] == 404
        g = tg.InferenceServerClient(server.grpc_address)
        g.load_model("iris")  # Triton's message layout
        assert g.is_model_ready("iris")
        code, body = _http(
            server, "POST", "/v1/models/iris:predict", json.dumps({"instances": IRIS_ROWS}).encode()
        )
        assert code == 200 and body["predictions"] == iris_expected
        g.unload_model("iris")
        assert _http(server, "GET", "/v1/models/iris")[0] == 404
        h.load_model("iris")
        assert h.is_model_ready("iris")


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_workers_serve_rest_and_grpc_from_each_process(
    iris_dir: Path, tmp_path: Path, iris_expected: list[int]
) -> None:
    import tritonclient.grpc as tg
    import tritonclient.http as th

    args = ["--model_name", "iris", "--model_dir", str(iris_dir), "--workers", "2"]
    with run_server(args, tmp_path) as server:
        assert len(_children(server.proc.pid)) == 2
        inp = th.InferInput("input-0", list(X.shape), "FP32")
        inp.set_data_from_numpy(X)
        ginp = tg.InferInput("input-0", list(X.shape), "FP32")
        ginp.set_data_from_numpy(X)
        for _ in range(10):  # fresh connections land on either worker; all must answer
            h = th.InferenceServerClient(f"127.0.0.1:{server.http_port}")
            assert h.infer("iris", [inp]).as_numpy("output-0").tolist() == iris_expected
            h.close()
            g = tg.InferenceServerClient(server.grpc_address)
            assert g.infer("iris", [ginp]).as_numpy("output-0").tolist() == iris_expected
            g.close()
        # Whichever worker answers the scrape, it reports all workers' requests.
        for _ in range(4):
            with urllib.request.urlopen(server.url + "/metrics", timeout=30) as r:
                text = r.read().decode()
            assert (
                'inference_requests_total{code="200",model_name="iris",protocol="rest"} 10.0'
                in text
            )
            assert (
                'inference_requests_total{code="OK",model_name="iris",protocol="grpc"} 10.0' in text
            )


def test_port_env_is_the_http_port_and_bad_flags_fail_clearly(
    iris_dir: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    from .conftest import free_port

    port = free_port()
    args = ["--model_name", "iris", "--model_dir", str(iris_dir)]
    with run_server(args, tmp_path, env={"PORT": str(port)}) as server:
        assert server.http_port == port
        assert _http(server, "GET", "/v2/health/live") == (200, {"live": True})
    for bad, fragment in (
        (["--workers", "0", "--model_dir", str(iris_dir)], "--workers"),
        (["--model_dir", str(tmp_path / "missing")], "does not exist"),
        ([], "nothing to serve"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "wonderland", "serve", *bad],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("error: ") and fragment in proc.stderr


TRANSFORMER = textwrap.dedent(
    '''
    NAMES = ["setosa", "versicolor", "virginica"]

    class IrisTransformer:
        """No predict: wonderland forwards to --predictor_host, as KServe does."""

        def __init__(self, name):
            self.name = name

        def preprocess(self, payload, headers=None):
            if isinstance(payload, dict):  # V1: named features -> rows
                rows = [[r["sl"], r["sw"], r["pl"], r["pw"]] for r in payload["instances"]]
                return {"instances": rows}
            return payload

        def postprocess(self, result, headers=None):
            if isinstance(result, dict) and "predictions" in result:
                return {"predictions": [NAMES[i] for i in result["predictions"]]}
            return result
    '''
)


@pytest.mark.parametrize("protocol", ["v1", "grpc-v2"])
def test_transformer_forwards_to_its_predictor(
    iris_server: ServerProcess, tmp_path: Path, iris_expected: list[int], protocol: str
) -> None:
    d = tmp_path / "transformer"
    d.mkdir()
    (d / "model.py").write_text(TRANSFORMER)
    host = (
        f"127.0.0.1:{iris_server.grpc_port}"
        if protocol == "grpc-v2"
        else f"127.0.0.1:{iris_server.http_port}"
    )
    args = [
        "--model_name",
        "iris",
        "--model_dir",
        str(d),
        "--predictor_host",
        host,
        "--predictor_protocol",
        protocol,
    ]
    with run_server(args, tmp_path) as server:
        if protocol == "v1":
            rows = [dict(zip(["sl", "sw", "pl", "pw"], r, strict=True)) for r in IRIS_ROWS]
            code, body = _http(
                server, "POST", "/v1/models/iris:predict", json.dumps({"instances": rows}).encode()
            )
            names = ["setosa", "versicolor", "virginica"]
            assert (code, body) == (200, {"predictions": [names[i] for i in iris_expected]})
            # The predictor's client error comes back as the transformer's.
            code, body = _http(
                server,
                "POST",
                "/v1/models/iris:predict",
                b'{"instances": [{"sl": 1, "sw": 2, "pl": 3, "pw": "x"}]}',
            )
            assert code == 400 and "predictor" in body["error"]
        else:
            import tritonclient.http as th

            c = th.InferenceServerClient(f"127.0.0.1:{server.http_port}")
            inp = th.InferInput("input-0", list(X.shape), "FP32")
            inp.set_data_from_numpy(X)
            result = c.infer("iris", [inp], request_id="t-1")
            assert result.as_numpy("output-0").tolist() == iris_expected
            assert result.get_response()["id"] == "t-1"


SLOW_LOADING_MODEL = """
import time


class SlowModel:
    def load(self):
        time.sleep(1.5)
        self.ready = True

    def predict(self, payload, headers=None):
        return {"predictions": [1]}
"""


@pytest.mark.parametrize("load_first", [True, False])
def test_load_before_listen_keeps_the_port_closed_until_the_model_is_loaded(
    tmp_path: Path, load_first: bool
) -> None:
    model_dir = tmp_path / "slow"
    model_dir.mkdir()
    (model_dir / "model.py").write_text(SLOW_LOADING_MODEL)
    args = ["--model_name", "slow", "--model_dir", str(model_dir), "--enable_grpc=false"]
    if load_first:
        args.append("--load_before_listen=true")
    with run_server(args, tmp_path, wait_ready=False) as server:
        # The first answer on the port tells whether it opened before the model was in memory.
        def first_answer() -> int | None:
            try:
                with urllib.request.urlopen(server.url + "/v2/health/ready", timeout=5) as r:
                    return int(r.status)
            except urllib.error.HTTPError as e:
                return e.code
            except (urllib.error.URLError, ConnectionError, OSError):
                assert server.proc.poll() is None, server.log.read_text()
                return None

        first = wait_for(first_answer, 30, "the port to open", interval=0.02, log=server.log)
    assert first == (200 if load_first else 503)
