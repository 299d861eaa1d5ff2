"""The model server's /metrics after real REST and gRPC traffic: KServe's and MLServer's
names, with the labels and counts the Grafana dashboard and MLServer users query."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import IRIS_ROWS, ServerProcess, run_server

pytestmark = pytest.mark.e2e

X = np.array(IRIS_ROWS, dtype=np.float32)


def _scrape(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(server.url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _post(server: ServerProcess, path: str, body: bytes) -> int:
    req = urllib.request.Request(server.url + path, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.parametrize("workers", [1, 2])
def test_rest_and_grpc_inference_show_kserve_and_mlserver_metrics(
    iris_dir: Path, tmp_path: Path, iris_expected: list[int], workers: int
) -> None:
    import tritonclient.grpc as tg
    import tritonclient.http as th
    from tritonclient.utils import InferenceServerException

    args = ["--model_name", "iris", "--model_dir", str(iris_dir), "--workers", str(workers)]
    with run_server(args, tmp_path) as server:
        inp = th.InferInput("input-0", list(X.shape), "FP32")
        inp.set_data_from_numpy(X)
        ginp = tg.InferInput("input-0", list(X.shape), "FP32")
        ginp.set_data_from_numpy(X)
        for _ in range(3):  # fresh connections: with --workers 2 they land on either worker
            h = th.InferenceServerClient(f"127.0.0.1:{server.http_port}")
            assert h.infer("iris", [inp]).as_numpy("output-0").tolist() == iris_expected
            h.close()
            g = tg.InferenceServerClient(server.grpc_address)
            assert g.infer("iris", [ginp]).as_numpy("output-0").tolist() == iris_expected
            g.close()
        # errors: a 400 over REST, INVALID_ARGUMENT over gRPC (the model fails on it)
        bad = json.dumps(
            {
                "inputs": [
                    {"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}
                ]
            }
        ).encode()
        assert _post(server, "/v2/models/iris/infer", bad) == 400
        assert _post(server, "/v2/models/iris/infer", b"{oops") == 400
        g = tg.InferenceServerClient(server.grpc_address)
        wrong = tg.InferInput("input-0", [1, 3], "FP32")
        wrong.set_data_from_numpy(np.ones((1, 3), dtype=np.float32))
        with pytest.raises(InferenceServerException) as err:
            g.infer("iris", [wrong])
        assert "INVALID_ARGUMENT" in str(err.value.status())
        g.close()

        for _ in range(2 * workers):  # whichever worker answers, it reports all of them
            m = _scrape(server)
            # KServe's names and the dashboard's request counter
            assert (
                _value(
                    m, "inference_requests_total", model_name="iris", protocol="rest", code="200"
                )
                == 3
            )
            assert (
                _value(
                    m, "inference_requests_total", model_name="iris", protocol="rest", code="400"
                )
                == 2
            )
            assert (
                _value(m, "inference_requests_total", model_name="iris", protocol="grpc", code="OK")
                == 3
            )
            assert (
                _value(
                    m,
                    "inference_requests_total",
                    model_name="iris",
                    protocol="grpc",
                    code="INVALID_ARGUMENT",
                )
                == 1
            )
            assert _value(m, "request_predict_seconds_count", model_name="iris") == 8
            assert _value(m, "request_preprocess_seconds_count", model_name="iris") == 8
            assert _value(m, "request_postprocess_seconds_count", model_name="iris") == 6
            # MLServer's names: counted once in the data plane, whichever protocol
            assert _value(m, "model_infer_request_success_total", model="iris", version="") == 6
            # the malformed JSON never reached the data plane; the wrong shape did, twice
            assert _value(m, "model_infer_request_failure_total", model="iris", version="") == 2
            assert _value(m, "model_infer_request_duration_count", model="iris", version="") == 8
            assert _value(m, "model_infer_request_duration_sum", model="iris", version="") > 0
            assert _value(m, "parallel_request_queue_count") == 8
            assert _value(m, "batch_request_queue_count", model_name="iris", model_version="") == 8
            infer_route = "/v2/models/{model_name}/infer"
            rest = {"method": "POST", "path": infer_route, "app_name": "wonderland"}
            assert _value(m, "rest_server_requests_total", status_code="200", **rest) == 3
            assert _value(m, "rest_server_requests_total", status_code="400", **rest) == 2
            assert (
                _value(m, "rest_server_request_duration_seconds_count", status_code="200", **rest)
                == 3
            )
            assert (
                _value(m, "rest_server_requests_in_progress", method="POST", app_name="wonderland")
                == 0
            )
            grpc = {
                "grpc_type": "UNARY",
                "grpc_service": "inference.GRPCInferenceService",
                "grpc_method": "ModelInfer",
            }
            assert _value(m, "grpc_server_started_total", **grpc) == 4
            assert _value(m, "grpc_server_handled_total", grpc_code="OK", **grpc) == 3
            assert _value(m, "grpc_server_handled_total", grpc_code="INVALID_ARGUMENT", **grpc) == 1


def test_made_up_http_methods_do_not_add_series(iris_dir: Path, tmp_path: Path) -> None:
    args = ["--model_name", "iris", "--model_dir", str(iris_dir)]
    with run_server(args, tmp_path) as server:
        for method in ("PROPFIND", "MKCOL", "PURGE"):  # methods llhttp knows
            req = urllib.request.Request(server.url + "/v2/models/iris", method=method)
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=30)
            assert err.value.code == 405
        m = _scrape(server)
        methods = {
            dict(labels).get("method")
            for name, labels in m
            if name.startswith("rest_server_requests")
        }
        assert {"PROPFIND", "MKCOL", "PURGE"}.isdisjoint(methods)
        route = {"path": "/v2/models/{model_name}", "app_name": "wonderland"}
        assert (
            _value(m, "rest_server_requests_total", method="_OTHER", status_code="405", **route)
            == 3
        )
