"""Runtime selection as KServe does it, and the Knative Service a component becomes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wonderland.kserve.components import (
    ComponentSpecError,
    component_ksvc,
    model_container,
    traffic_for,
    transformer_container,
)
from wonderland.kserve.runtimes import (
    RuntimeSelectionError,
    builtin_runtimes,
    select_runtime,
)


def rt(name: str, formats: list[dict[str, Any]], protocols: list[str], ts: str = "") -> dict:  # type: ignore[type-arg]
    return {
        "metadata": {"name": name, "creationTimestamp": ts},
        "spec": {
            "supportedModelFormats": formats,
            "protocolVersions": protocols,
            "containers": [{"name": "kserve-container", "args": ["--model_dir=/mnt/models"]}],
        },
    }


ISVC = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {"name": "iris", "namespace": "ml", "uid": "u1"},
    "spec": {"predictor": {}},
}


def test_builtin_runtimes_cover_every_served_format() -> None:
    builtins = builtin_runtimes()
    for fmt in ("sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "huggingface", "mlflow"):
        choice = select_runtime({"modelFormat": {"name": fmt}}, [], builtins)
        assert choice.cluster
    choice = select_runtime({"modelFormat": {"name": "sklearn", "version": "1"}}, [], builtins)
    assert choice.name == "kserve-sklearnserver"
    choice = select_runtime({"modelFormat": {"name": "mlflow", "version": "3"}}, [], builtins)
    assert choice.name == "kserve-mlserver"


def test_namespace_runtime_wins_then_priority_decides() -> None:
    fmt = [{"name": "sklearn", "autoSelect": True, "priority": 1}]
    ns = [rt("mine", fmt, ["v1", "v2"])]
    cluster = [rt("cluster", [{"name": "sklearn", "autoSelect": True, "priority": 5}], ["v1"])]
    # The higher priority wins across groups; with equal priority the namespace one.
    assert select_runtime({"modelFormat": {"name": "sklearn"}}, ns, cluster).name == "cluster"
    cluster[0]["spec"]["supportedModelFormats"][0]["priority"] = 1
    assert select_runtime({"modelFormat": {"name": "sklearn"}}, ns, cluster).name == "mine"


def test_auto_select_and_protocol_filter() -> None:
    no_auto = [rt("manual", [{"name": "sklearn"}], ["v1", "v2"])]
    with pytest.raises(RuntimeSelectionError) as err:
        select_runtime({"modelFormat": {"name": "sklearn"}}, no_auto, [])
    assert err.value.reason == "NoSupportingRuntime"
    # Named explicitly, autoSelect does not matter.
    assert select_runtime({"modelFormat": {"name": "sklearn"}, "runtime": "manual"}, no_auto, [])
    with pytest.raises(RuntimeSelectionError, match="does not support protocol 'grpc-v2'"):
        select_runtime(
            {"modelFormat": {"name": "sklearn"}, "runtime": "manual", "protocolVersion": "grpc-v2"},
            no_auto,
            [],
        )
    with pytest.raises(RuntimeSelectionError, match="does not support model format 'onnx'"):
        select_runtime({"modelFormat": {"name": "onnx"}, "runtime": "manual"}, no_auto, [])


def test_version_must_match() -> None:
    cluster = [rt("v1", [{"name": "xgboost", "version": "1", "autoSelect": True}], ["v1"])]
    assert select_runtime({"modelFormat": {"name": "xgboost", "version": "1.7"}}, [], cluster)
    with pytest.raises(RuntimeSelectionError, match="version 2"):
        select_runtime({"modelFormat": {"name": "xgboost", "version": "2"}}, [], cluster)


def test_model_container_maps_storage_ports_and_batcher(tmp_path: Path) -> None:
    runtime = builtin_runtimes()[0]
    isvc = {**ISVC, "spec": {"predictor": {"batcher": {"maxBatchSize": 8}}}}
    m = {"modelFormat": {"name": "sklearn"}, "env": [{"name": "A", "value": "b"}]}
    c = model_container(isvc, m, runtime, tmp_path, builtin=True)
    assert c["name"] == "kserve-container"
    assert f"--model_dir={tmp_path}" in c["args"]
    assert "--model_name=iris" in c["args"]
    assert "--http_port=$(PORT)" in c["args"]
    assert "--max_batch_size=8" in c["args"] and "--max_latency_ms=5000" in c["args"]
    assert {"name": "A", "value": "b"} in c["env"]
    g = model_container(ISVC, {**m, "protocolVersion": "grpc-v2"}, runtime, tmp_path, True)
    assert "--grpc_port=$(PORT)" in g["args"] and g["ports"][0]["name"] == "h2c"


def test_transformer_gets_the_predictor_host() -> None:
    c = transformer_container(ISVC, {"containers": [{"image": "t"}], "containerConcurrency": 4})
    assert c["args"] == [
        "--model_name",
        "iris",
        "--predictor_host",
        "iris-predictor.ml",
        "--http_port",
        "$(PORT)",
        "--workers",
        "4",
    ]
    with pytest.raises(ComponentSpecError):
        transformer_container(ISVC, {})


def test_component_scaling_and_canary_traffic() -> None:
    comp = {
        "minReplicas": 0,
        "maxReplicas": 3,
        "scaleTarget": 5,
        "scaleMetric": "rps",
        "containerConcurrency": 2,
        "timeout": 30,
        "canaryTrafficPercent": 25,
    }
    ksvc = component_ksvc(ISVC, "predictor", comp, {"image": "x"}, "iris-predictor-00001")
    ann = ksvc["spec"]["template"]["metadata"]["annotations"]
    assert ann["autoscaling.knative.dev/min-scale"] == "0"
    assert ann["autoscaling.knative.dev/max-scale"] == "3"
    assert ann["autoscaling.knative.dev/target"] == "5"
    assert ann["autoscaling.knative.dev/metric"] == "rps"
    spec = ksvc["spec"]["template"]["spec"]
    assert spec["containerConcurrency"] == 2 and spec["timeoutSeconds"] == 30
    assert ksvc["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert ksvc["spec"]["traffic"] == traffic_for(comp, "iris-predictor-00001")
    assert {t["tag"]: t["percent"] for t in ksvc["spec"]["traffic"]} == {"latest": 25, "prev": 75}
    # No revision rolled out yet, or no canary: everything to the latest.
    assert traffic_for(comp, None) == [{"latestRevision": True, "percent": 100}]
    assert traffic_for({}, "x") == [{"latestRevision": True, "percent": 100}]
    with pytest.raises(ComponentSpecError, match="HPA"):
        component_ksvc(ISVC, "predictor", {"scaleMetric": "cpu"}, {}, None)
    default = component_ksvc(ISVC, "predictor", {}, {}, None)
    assert (
        default["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"]
        == "1"
    )
