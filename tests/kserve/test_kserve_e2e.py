"""InferenceService end to end through a real `wonderland up`: sklearn, xgboost (gRPC over
h2c), onnx, a custom predictor, a transformer, canary and promotion, scale from zero, S3
storage against moto, and specs that cannot run."""

from __future__ import annotations

import asyncio
import collections
import http.server
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from _support.manifests import SHORT_AUTOSCALER
from _support.servers import moto_endpoint, s3_bucket
from kserve_testing import (
    APPS,
    IRIS,
    KServeDaemon,
    isvc,
    model,
    train_models,
    wait_for,
)

pytestmark = pytest.mark.e2e

TRANSFORMER_MODEL = Path(__file__).resolve().parent / "kserve_transformer_model"

CONFIG = SHORT_AUTOSCALER


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return train_models(tmp_path_factory.mktemp("models"))


s3_endpoint = pytest.fixture(scope="module")(moto_endpoint)


@pytest.fixture(scope="module")
def s3(s3_endpoint: str, models: dict[str, Path]) -> str:
    model = (models["sklearn"] / "model.joblib").read_bytes()
    s3_bucket(s3_endpoint, "models", {"iris/model.joblib": model})
    return s3_endpoint


@pytest.fixture(scope="module")
def sink() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A CloudEvents sink on loopback: (url, received (headers, body) pairs)."""
    events: list[tuple[dict[str, str], bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            events.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(202)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/events", events
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def daemon(
    tmp_path_factory: pytest.TempPathFactory,
    models: dict[str, Path],
    s3: str,
    sink: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> Iterator[KServeDaemon]:
    tmp = tmp_path_factory.mktemp("kserve-e2e")
    manifests = tmp / "config.yaml"
    manifests.write_text(CONFIG)
    d = KServeDaemon(tmp)
    try:
        d.start(manifests)
        # Everything at once: the predictors start side by side.
        d.apply(
            isvc("sklearn-iris", model("sklearn", f"file://{models['sklearn']}")),
            isvc("onnx-iris", model("onnx", str(models["onnx"]), protocolVersion="v2")),
            isvc(
                "xgb-iris",
                model(
                    "xgboost",
                    str(models["xgboost"]),
                    protocolVersion="grpc-v2",
                    # As KServe's gRPC examples write it.
                    ports=[{"name": "h2c", "protocol": "TCP", "containerPort": 8081}],
                ),
            ),
            isvc(
                "custom",
                {
                    "containers": [
                        {
                            "name": "kserve-container",
                            "image": "custom-app",
                            "command": [sys.executable, APPS, "custom"],
                            "args": ["--model_dir", "/mnt/models"],
                            "env": [{"name": "STORAGE_URI", "value": f"file://{models['label']}"}],
                        }
                    ]
                },
                explainer={
                    "containers": [
                        {
                            "name": "kserve-container",
                            "image": "custom-explainer",
                            "command": [sys.executable, APPS, "custom"],
                        }
                    ]
                },
            ),
            isvc(
                "chain",
                model("sklearn", str(models["sklearn"])),
                transformer={
                    "containers": [
                        {
                            "name": "kserve-container",
                            "image": "tr",
                            "command": [sys.executable, APPS, "transformer"],
                        }
                    ]
                },
            ),
            isvc(
                "chain2",
                model("sklearn", str(models["sklearn"])),
                transformer={
                    "containers": [
                        {
                            "name": "kserve-container",
                            "image": "wonderland/model-server",
                            "command": ["wonderland", "serve"],
                            "args": [f"--model_dir={TRANSFORMER_MODEL}"],
                        }
                    ]
                },
            ),
            isvc("zero", {**model("sklearn", str(models["sklearn"])), "minReplicas": 0}),
            isvc(
                "logged",
                {
                    **model("sklearn", str(models["sklearn"])),
                    "logger": {
                        "url": sink[0],
                        "mode": "all",
                        "metadataHeaders": ["x-team"],
                        "metadataAnnotations": ["team"],
                    },
                },
                annotations={"team": "ml", "other": "not logged"},
            ),
            isvc(
                "s3-iris",
                {
                    **model(
                        "sklearn",
                        "s3://models/iris",
                        env=[
                            {"name": "AWS_ACCESS_KEY_ID", "value": "test"},
                            {"name": "AWS_SECRET_ACCESS_KEY", "value": "test"},
                        ],
                    ),
                    "batcher": {"maxBatchSize": 4, "maxLatency": 20},
                },
                annotations={
                    "serving.kserve.io/s3-endpoint": s3.removeprefix("http://"),
                    "serving.kserve.io/s3-usehttps": "0",
                    "serving.wonderland.dev/allow-remote-pickle": "true",
                },
            ),
        )
        yield d
    finally:
        d.kill()


def _post(d: KServeDaemon, host: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(d.gateway + path, json=body, headers={"Host": host}, timeout=60)


V2_BODY = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": IRIS}]}


def test_the_talks_sklearn_iris(daemon: KServeDaemon) -> None:
    got = daemon.wait_ready("sklearn-iris")
    st = got["status"]
    assert st["url"] == daemon.url("sklearn-iris")
    pred = st["components"]["predictor"]
    assert pred["url"] == daemon.url("sklearn-iris-predictor")
    assert pred["latestReadyRevision"] == "sklearn-iris-predictor-00001"
    assert pred["traffic"][0]["percent"] == 100
    types = {c["type"]: c["status"] for c in st["conditions"]}
    assert types["PredictorReady"] == types["IngressReady"] == types["Ready"] == "True"

    r = _post(
        daemon, daemon.host("sklearn-iris-predictor"), "/v2/models/sklearn-iris/infer", V2_BODY
    )
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [1, 1]
    r = _post(
        daemon, daemon.host("sklearn-iris"), "/v1/models/sklearn-iris:predict", {"instances": IRIS}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1, 1]}

    ksvc = daemon.get("ksvc", "sklearn-iris-predictor")
    assert ksvc["metadata"]["ownerReferences"][0]["kind"] == "InferenceService"
    assert ksvc["metadata"]["labels"]["serving.kserve.io/inferenceservice"] == "sklearn-iris"
    container = ksvc["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "kserve-container"
    assert container["command"][-2:] == ["wonderland.kserve.forkserver", "serve"]
    table = daemon.cli("get", "isvc", "sklearn-iris")
    header, row = table.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "URL", "READY", "PREV", "LATEST"]
    assert row.split()[:3] == ["sklearn-iris", daemon.url("sklearn-iris"), "True"]
    assert row.split()[4] == "100"


def test_onnx_with_tritonclient_http(daemon: KServeDaemon) -> None:
    import tritonclient.http as httpclient

    daemon.wait_ready("onnx-iris")
    client = httpclient.InferenceServerClient(daemon.gateway.removeprefix("http://"))
    data = np.array(IRIS, dtype=np.float32)
    inp = httpclient.InferInput("X", list(data.shape), "FP32")
    inp.set_data_from_numpy(data, binary_data=True)
    result = client.infer("onnx-iris", [inp], headers={"Host": daemon.host("onnx-iris-predictor")})
    labels = result.as_numpy("label")
    assert labels is not None and labels.tolist() == [1, 1]


def test_xgboost_over_grpc_through_the_gateway(daemon: KServeDaemon) -> None:
    import tritonclient.grpc as grpcclient

    daemon.wait_ready("xgb-iris")
    ksvc = daemon.get("ksvc", "xgb-iris-predictor")
    assert ksvc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] == "h2c"
    client = grpcclient.InferenceServerClient(
        daemon.gateway.removeprefix("http://"),
        channel_args=[("grpc.default_authority", daemon.host("xgb-iris-predictor"))],
    )
    try:
        assert client.is_model_ready("xgb-iris")
        data = np.array(IRIS, dtype=np.float32)
        inp = grpcclient.InferInput("input-0", list(data.shape), "FP32")
        inp.set_data_from_numpy(data)
        result = client.infer("xgb-iris", [inp])
        out = result.get_response().outputs[0].name
        preds = result.as_numpy(out)
        assert preds is not None and len(preds) == 2
    finally:
        client.close()


def test_custom_predictor_container(daemon: KServeDaemon) -> None:
    daemon.wait_ready("custom")
    r = _post(daemon, daemon.host("custom"), "/v1/models/custom:predict", {"instances": IRIS})
    assert r.status_code == 200, r.text
    # STORAGE_URI was resolved and /mnt/models in its args points at the local copy.
    assert r.json() == {"predictions": [15.8, 15.5], "served_by": "custom", "label": "custom-v1"}
    st = daemon.get("isvc", "custom")["status"]
    assert st["components"]["explainer"]["url"] == daemon.url("custom-explainer")
    assert daemon.condition("custom", "ExplainerReady")["status"] == "True"


def test_transformer_calls_the_predictor(daemon: KServeDaemon) -> None:
    got = daemon.wait_ready("chain")
    st = got["status"]
    assert {c["type"] for c in st["conditions"]} >= {"PredictorReady", "TransformerReady"}
    assert st["components"]["transformer"]["url"] == daemon.url("chain-transformer")
    args = daemon.get("ksvc", "chain-transformer")["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    assert args[args.index("--predictor_host") + 1] == "chain-predictor.default"
    assert args[args.index("--model_name") + 1] == "chain"
    mm = [[v * 10 for v in row] for row in IRIS]
    for _ in range(3):  # through the InferenceService's host, which routes to the transformer
        r = _post(daemon, daemon.host("chain"), "/v1/models/chain:predict", {"instances": mm})
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": ["versicolor", "versicolor"]}
        assert r.headers["x-predictor-host"] == "chain-predictor.default"


def test_wonderland_serve_as_the_transformer(daemon: KServeDaemon) -> None:
    daemon.wait_ready("chain2")
    mm = [[v * 10 for v in row] for row in IRIS]
    r = _post(daemon, daemon.host("chain2"), "/v1/models/chain2:predict", {"instances": mm})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == ["versicolor", "versicolor"]


def test_canary_split_then_promotion(daemon: KServeDaemon, models: dict[str, Path]) -> None:
    daemon.wait_ready("sklearn-iris")
    daemon.apply(
        isvc(
            "sklearn-iris",
            {
                **model("sklearn", f"file://{models['sklearn-constant']}"),
                "canaryTrafficPercent": 30,
            },
        )
    )
    got = daemon.wait_ready("sklearn-iris")
    traffic = got["status"]["components"]["predictor"]["traffic"]
    by_tag = {t.get("tag"): t for t in traffic}
    assert by_tag["prev"]["revisionName"] == "sklearn-iris-predictor-00001"
    assert by_tag["prev"]["percent"] == 70
    assert by_tag["latest"]["revisionName"] == "sklearn-iris-predictor-00002"
    assert by_tag["latest"]["percent"] == 30
    row = daemon.cli("get", "isvc", "sklearn-iris").splitlines()[1].split()
    assert row[3:5] == ["70", "30"]

    counts: collections.Counter[int] = collections.Counter()
    with httpx.Client(base_url=daemon.gateway, timeout=60) as client:
        for _ in range(300):
            r = client.post(
                "/v1/models/sklearn-iris:predict",
                json={"instances": IRIS[:1]},
                headers={"Host": daemon.host("sklearn-iris")},
            )
            assert r.status_code == 200, r.text
            counts[r.json()["predictions"][0]] += 1
    share = counts[2] / 300  # the constant model answers 2, the SVC answers 1
    assert counts[1] + counts[2] == 300
    assert 0.2 <= share <= 0.4, counts

    # Removing canaryTrafficPercent promotes the new revision to all traffic.
    daemon.apply(isvc("sklearn-iris", model("sklearn", f"file://{models['sklearn-constant']}")))

    def promoted() -> dict[str, Any] | None:
        st = daemon.get("isvc", "sklearn-iris").get("status") or {}
        pred = st.get("components", {}).get("predictor", {})
        traffic = pred.get("traffic") or []
        if len(traffic) == 1 and traffic[0].get("revisionName") == "sklearn-iris-predictor-00002":
            return dict(pred)
        return None

    pred = wait_for(promoted, 60, "promotion")
    assert pred["latestRolledoutRevision"] == "sklearn-iris-predictor-00002"
    assert pred["previousRolledoutRevision"] == "sklearn-iris-predictor-00001"
    for _ in range(20):
        r = _post(
            daemon,
            daemon.host("sklearn-iris"),
            "/v1/models/sklearn-iris:predict",
            {"instances": IRIS[:1]},
        )
        assert r.json() == {"predictions": [2]}


def test_scale_from_zero_loads_the_model(daemon: KServeDaemon) -> None:
    daemon.wait_ready("zero")
    ksvc = daemon.get("ksvc", "zero-predictor")
    annotations = ksvc["spec"]["template"]["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/min-scale"] == "0"
    rev = ksvc["status"]["latestReadyRevisionName"]

    def at_zero() -> bool:
        st = daemon.get("revision", rev).get("status") or {}
        return st.get("actualReplicas") == 0

    wait_for(at_zero, 90, "scale to zero")
    r = _post(daemon, daemon.host("zero-predictor"), "/v1/models/zero:predict", {"instances": IRIS})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1, 1]}
    # The cold start (model load included) is reported by the gateway.
    metrics = httpx.get(daemon.gateway + "/metrics", timeout=30).text
    line = next(
        (m for m in metrics.splitlines() if m.startswith("faas_coldstarts_total") and rev in m),
        "",
    )
    assert line and float(line.rsplit(" ", 1)[1]) >= 1, metrics[:2000]


async def test_s3_storage_uri_and_batcher(daemon: KServeDaemon) -> None:
    daemon.wait_ready("s3-iris")
    args = daemon.get("ksvc", "s3-iris-predictor")["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    assert "--max_batch_size=4" in args and "--max_latency_ms=20" in args
    async with httpx.AsyncClient(base_url=daemon.gateway, timeout=60) as client:
        rs = await asyncio.gather(
            *(
                client.post(
                    "/v1/models/s3-iris:predict",
                    json={"instances": IRIS[i % 2 : i % 2 + 1]},
                    headers={"Host": daemon.host("s3-iris")},
                )
                for i in range(8)
            )
        )
    assert all(r.status_code == 200 for r in rs), [r.text for r in rs]
    assert [r.json()["predictions"] for r in rs] == [[1]] * 8


def test_specs_that_cannot_run_say_why(daemon: KServeDaemon, tmp_path: Path) -> None:
    v1_only = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": "v1-only", "namespace": "default"},
        "spec": {
            "supportedModelFormats": [{"name": "sklearn", "version": "1"}],
            "protocolVersions": ["v1"],
            "containers": [{"name": "kserve-container", "image": "x", "command": ["true"]}],
        },
    }
    daemon.apply(
        v1_only,
        isvc("bad-format", model("tensorflow-lite", str(tmp_path))),
        isvc(
            "bad-protocol", model("sklearn", str(tmp_path), runtime="v1-only", protocolVersion="v2")
        ),
        isvc("bad-storage", model("sklearn", f"file://{tmp_path}/missing")),
        isvc("bad-runtime", model("sklearn", str(tmp_path), runtime="nope")),
        isvc("no-storage", {"model": {"modelFormat": {"name": "sklearn"}}}),
    )
    expected = {
        "bad-format": ("NoSupportingRuntime", "no runtime supports model format 'tensorflow-lite'"),
        "bad-protocol": ("NoSupportingRuntime", "does not support protocol 'v2'"),
        "bad-storage": ("ModelLoadFailed", "missing does not exist"),
        "bad-runtime": ("RuntimeNotRecognized", "named 'nope'"),
        "no-storage": ("InvalidPredictorSpec", "spec.predictor.model.storageUri"),
    }
    for name, (reason, text) in expected.items():
        cond = wait_for(
            lambda n=name: (c := daemon.condition(n)) and c.get("status") == "False" and c,
            60,
            f"{name} not Ready",
        )
        assert cond["reason"] == reason, cond
        assert text in cond["message"], cond
        assert daemon.condition(name, "PredictorReady")["status"] == "False"
        info = daemon.get("isvc", name)["status"]["modelStatus"]["lastFailureInfo"]
        assert info["reason"] == reason
    assert "False" in daemon.cli("get", "isvc", "bad-format")
    # What KServe's webhook refuses is refused at apply, with the field.
    bad = isvc("bad-canary", {**model("sklearn", str(tmp_path)), "canaryTrafficPercent": 120})
    out = daemon.cli("apply", "-f", "-", stdin=yaml.safe_dump(bad), check=False)
    assert "spec.predictor.canaryTrafficPercent" in out and "between 0 and 100" in out
    assert daemon.get("isvc", "bad-canary") == {}
    assert daemon.get("ksvc", "bad-format-predictor") == {}


def test_a_bad_update_keeps_the_last_good_revision_serving(
    daemon: KServeDaemon, models: dict[str, Path]
) -> None:
    daemon.apply(isvc("goes-bad", model("sklearn", str(models["sklearn"]))))
    url = daemon.wait_ready("goes-bad")["status"]["url"]
    daemon.apply(isvc("goes-bad", model("sklearn", str(models["sklearn"]), runtime="absent")))
    cond = wait_for(
        lambda: (c := daemon.condition("goes-bad")) and c.get("status") == "False" and c,
        60,
        "goes-bad not Ready",
    )
    assert cond["reason"] == "RuntimeNotRecognized"
    assert daemon.get("isvc", "goes-bad")["status"]["url"] == url
    r = _post(daemon, daemon.host("goes-bad"), "/v1/models/goes-bad:predict", {"instances": IRIS})
    assert r.status_code == 200 and r.json() == {"predictions": [1, 1]}


def test_delete_removes_the_components(daemon: KServeDaemon) -> None:
    daemon.wait_ready("custom")
    daemon.cli("delete", "isvc", "custom")
    wait_for(lambda: daemon.get("ksvc", "custom-predictor") == {}, 30, "ksvc deleted")
    wait_for(lambda: daemon.get("ksvc", "custom-explainer") == {}, 30, "explainer deleted")
    wait_for(lambda: daemon.get("route", "custom") == {}, 30, "route deleted")
    assert daemon.get("isvc", "sklearn-iris")["metadata"]["name"] == "sklearn-iris"


def test_logger_posts_cloudevents_to_the_sink(
    daemon: KServeDaemon, sink: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    daemon.wait_ready("logged")
    _, events = sink
    r = httpx.post(
        daemon.gateway + "/v1/models/logged:predict",
        json={"instances": IRIS},
        headers={"Host": daemon.host("logged"), "x-team": "iris-team"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    wait_for(lambda: len(events) >= 2, 30, "two CloudEvents")
    by_type = {h["ce-type"]: (h, body) for h, body in events}
    req_h, req_body = by_type["org.kubeflow.serving.inference.request"]
    resp_h, resp_body = by_type["org.kubeflow.serving.inference.response"]
    assert req_h["ce-id"] == resp_h["ce-id"]
    assert req_h["ce-specversion"] == "1.0"
    assert req_h["ce-inferenceservicename"] == "logged"
    assert req_h["ce-namespace"] == "default"
    assert req_h["ce-component"] == "predictor"
    assert json.loads(req_h["ce-metadata"]) == {"x-team": ["iris-team"]}
    assert json.loads(req_h["ce-annotations"]) == {"team": "ml"}
    assert json.loads(req_body) == {"instances": IRIS}
    assert json.loads(resp_body) == {"predictions": [1, 1]}
