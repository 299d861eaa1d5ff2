"""`export_objects`: the objects that run here, mapped for a cluster, as a kustomize tree."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import yaml

from wonderland.api.manifests import load_paths, load_text
from wonderland.export import (
    PROFILES,
    ExportTree,
    LocalImage,
    SourceObject,
    check_manifests,
    export_objects,
)
from wonderland.export.sources import local_images, source_digest

ROOT = Path(__file__).resolve().parents[2]
CONFERENCE = ROOT / "examples" / "conference"
PROFILE = PROFILES["cluster"]


def objects(text: str) -> list[SourceObject]:
    return [
        SourceObject(m.obj, m.source)
        for m in load_text(textwrap.dedent(text).lstrip("\n"), "app.yaml")
    ]


def written(tree: ExportTree) -> dict[str, dict[str, Any]]:
    """Kind/name -> the object as written."""
    out = {}
    for path in tree.manifests:
        obj = yaml.safe_load(tree.files[path])
        out[f"{obj['kind']}/{obj['metadata']['name']}"] = obj
    return out


def conference(registry: str | None = "registry.example/conf") -> ExportTree:
    objs = [SourceObject(m.obj, m.source) for m in load_paths([str(CONFERENCE)])]
    images = local_images(
        [
            c["image"]
            for o in objs
            if o.obj["kind"] == "Service"
            for c in o.obj["spec"]["template"]["spec"]["containers"]
        ],
        [CONFERENCE],
        root=ROOT,
    )
    return export_objects(objs, PROFILE, images, registry)


def test_the_conference_tree_passes_the_check_with_no_local_only_feature_left() -> None:
    tree = conference()
    manifests = [m for p in tree.manifests for m in load_text(tree.files[p], p)]
    report = check_manifests(manifests)
    assert report.ok, [str(f) for f in report.findings]
    assert report.warnings == []
    kustomization = yaml.safe_load(tree.files["kustomization.yaml"])
    assert sorted(kustomization["resources"]) == sorted(tree.manifests)
    # Config before the apps, the Subscription after the subscribers.
    resources = kustomization["resources"]
    assert resources.index("dapr/component-conference-conference-pubsub.yaml") < resources.index(
        "serving/service-frontend.yaml"
    )
    assert resources[-1] == "dapr/subscription-conference-subscription.yaml"


def test_local_dapr_components_become_redis_with_one_warning_each() -> None:
    tree = conference()
    objs = written(tree)
    pubsub = objs["Component/conference-conference-pubsub"]["spec"]
    assert pubsub["type"] == "pubsub.redis"
    assert pubsub["metadata"][0] == {
        "name": "redisHost",
        "value": "redis-master.default.svc.cluster.local:6379",
    }
    assert pubsub["metadata"][1]["secretKeyRef"] == {"name": "redis", "key": "redis-password"}
    state = objs["Component/conference-agenda-service-statestore"]["spec"]
    assert state["type"] == "state.redis"
    # keyPrefix is Dapr's own (every state store); the SQLite file is not carried over.
    assert {m["name"] for m in state["metadata"]} == {"redisHost", "redisPassword", "keyPrefix"}
    assert objs["Component/feature-flags"]["spec"]["type"] == "configuration.redis"
    substitutions = [w for w in tree.warnings if "spec.type" in w]
    assert len(substitutions) == 3
    assert any(
        w.startswith(f"{CONFERENCE / 'statestore.yaml'}: Component/conference-agenda-service")
        and '"state.sqlite" -> "state.redis"' in w
        and "dropped metadata: connectionString" in w
        for w in substitutions
    )
    notes = tree.files["EXPORT-NOTES.md"]
    assert 'redis-cli SET callForProposalsEnabled "true||1"' in notes
    assert "helm install redis" in notes


def test_a_local_model_moves_to_a_claim_on_the_platform_model_server() -> None:
    objs = written(conference())
    model = objs["InferenceService/sklearn-iris"]["spec"]["predictor"]["model"]
    assert model["storageUri"] == "pvc://models/sklearn-iris"
    assert model["runtime"] == "wonderland-model-server"
    claim = objs["PersistentVolumeClaim/models"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    runtime = objs["ClusterServingRuntime/wonderland-model-server"]["spec"]
    assert runtime["supportedModelFormats"] == [{"name": "sklearn", "autoSelect": False}]
    assert "v2" in runtime["protocolVersions"] and "grpc-v2" in runtime["protocolVersions"]
    container = runtime["containers"][0]
    assert container["name"] == "kserve-container"
    assert container["image"].startswith("registry.example/conf/model-server:")
    assert "--model_dir=/mnt/models" in container["args"]
    assert "--grpc_port=8081" in container["args"]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]


def test_images_of_local_folders_carry_the_source_digest() -> None:
    objs = written(conference())
    image = objs["Service/frontend"]["spec"]["template"]["spec"]["containers"][0]["image"]
    digest = source_digest(CONFERENCE / "apps" / "frontend")
    assert image == f"registry.example/conf/conference-frontend:{digest[:16]}"
    # A registry on the host: Knative's controller must not try to resolve its tags.
    local = written(conference("localhost:5001"))
    skip = local["ConfigMap/config-deployment"]["data"]["registries-skipping-tag-resolving"]
    assert "localhost:5001" in skip.split(",")
    assert "ConfigMap/config-deployment" not in objs


def test_without_a_registry_the_images_stay_and_are_listed() -> None:
    tree = conference(None)
    objs = written(tree)
    image = objs["Service/frontend"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "wonderland/conference-frontend:v1.0.0"
    assert (
        "wonderland/conference-frontend:v1.0.0 is the folder examples/conference/apps/frontend "
        "here: build and push it" in tree.files["EXPORT-NOTES.md"]
    )


def test_source_digest_follows_the_files_not_caches(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("app = 1\n")
    first = source_digest(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "app.cpython-312.pyc").write_bytes(b"\0")
    assert source_digest(tmp_path) == first
    (tmp_path / "app.py").write_text("app = 2\n")
    assert source_digest(tmp_path) != first


def test_knative_features_the_apps_rely_on_and_the_domain() -> None:
    objs = written(conference())
    features = objs["ConfigMap/config-features"]
    assert features["metadata"]["namespace"] == "knative-serving"
    # fieldRef env in the apps, tag headers the platform routes by default.
    assert features["data"] == {
        "kubernetes.podspec-fieldref": "Enabled",
        "tag-header-based-routing": "Enabled",
    }
    assert objs["ConfigMap/config-domain"]["data"] == {"example.com": ""}


def test_a_subscriber_that_scales_to_zero_gets_min_scale_one() -> None:
    tree = export_objects(
        objects("""
        apiVersion: serving.knative.dev/v1
        kind: Service
        metadata: {name: listener}
        spec:
          template:
            metadata:
              annotations: {dapr.io/enabled: "true", dapr.io/app-id: listener}
            spec:
              containers: [{image: registry.example/listener:1}]
        ---
        apiVersion: dapr.io/v2alpha1
        kind: Subscription
        metadata: {name: events}
        spec: {pubsubname: bus, topic: events, routes: {default: /events}}
        scopes: [listener]
        """),
        PROFILE,
    )
    ksvc = written(tree)["Service/listener"]
    assert ksvc["spec"]["template"]["metadata"]["annotations"][
        "autoscaling.knative.dev/min-scale"
    ] == ("1")
    assert any("no sidecar to receive messages" in w for w in tree.warnings)


def test_secrets_are_stubs_and_platform_objects_are_left_out() -> None:
    tree = export_objects(
        objects("""
        apiVersion: v1
        kind: Secret
        metadata: {name: api-key, uid: abc, resourceVersion: "7"}
        stringData: {token: s3cret}
        status: {}
        ---
        apiVersion: serving.knative.dev/v1
        kind: Revision
        metadata: {name: hello-00001}
        spec: {containers: [{image: registry.example/hello:1}]}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: made
          ownerReferences: [{apiVersion: v1, kind: Pod, name: p, uid: u}]
        ---
        apiVersion: trainer.kubeflow.org/v1alpha1
        kind: TrainingRuntime
        metadata:
          name: torch
          annotations: {tracking.wonderland.dev/mlflow: "off"}
        spec: {template: {spec: {replicatedJobs: []}}}
        """),
        PROFILE,
    )
    objs = written(tree)
    assert objs["Secret/api-key"]["stringData"] == {"token": ""}
    assert objs["Secret/api-key"]["metadata"] == {"name": "api-key"}
    assert "s3cret" not in "".join(tree.files.values())
    assert set(objs) == {"Secret/api-key", "TrainingRuntime/torch"}
    assert objs["TrainingRuntime/torch"]["spec"] == {"template": {"spec": {"replicatedJobs": []}}}
    assert tree.skipped == ("Revision/hello-00001", "ConfigMap/made")
    notes = tree.files["EXPORT-NOTES.md"]
    assert "Secret/api-key `data`: a stub: fill in token" in notes
    assert (
        "TrainingRuntime/torch `metadata.annotations.tracking.wonderland.dev/mlflow`: read by "
        "this platform only" in notes
    )


def test_an_environment_image_is_listed_not_renamed() -> None:
    tree = export_objects(
        objects("""
        apiVersion: batch/v1
        kind: Job
        metadata: {name: trial}
        spec:
          template:
            spec:
              restartPolicy: Never
              containers: [{name: main, image: team/katib-trial, command: [python, t.py]}]
        """),
        PROFILE,
        {"team/katib-trial": LocalImage("team/katib-trial", "katib-trial", ".venv-katib", None)},
        "registry.example",
    )
    job = written(tree)["Job/trial"]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "team/katib-trial"
    assert "runs in the Python environment .venv-katib here" in tree.files["EXPORT-NOTES.md"]


def test_every_image_field_of_a_local_folder_is_renamed() -> None:
    local = LocalImage("team/app:dev", "app", "apps/app", "ab" * 32)
    tree = export_objects(
        objects("""
        apiVersion: serving.knative.dev/v1
        kind: Service
        metadata: {name: hello}
        spec:
          template:
            spec:
              containers: [{image: "team/app:dev"}]
        ---
        apiVersion: trainer.kubeflow.org/v1alpha1
        kind: TrainJob
        metadata: {name: train}
        spec:
          runtimeRef: {name: torch-distributed}
          trainer: {image: "team/app:dev", numNodes: 1}
        """),
        PROFILE,
        {"team/app:dev": local},
        "registry.example",
    )
    objs = written(tree)
    new = "registry.example/app:" + "ab" * 8
    assert objs["Service/hello"]["spec"]["template"]["spec"]["containers"][0]["image"] == new
    assert objs["TrainJob/train"]["spec"]["trainer"]["image"] == new


def test_a_model_claim_sits_in_its_inference_services_namespace() -> None:
    tree = export_objects(
        objects("""
        apiVersion: serving.kserve.io/v1beta1
        kind: InferenceService
        metadata: {name: iris, namespace: team}
        spec:
          predictor:
            model: {modelFormat: {name: sklearn}, storageUri: ./model}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: config-features, namespace: knative-serving}
        data: {multi-container: Enabled}
        """),
        PROFILE,
    )
    objs = written(tree)
    assert objs["PersistentVolumeClaim/models"]["metadata"] == {
        "name": "models",
        "namespace": "team",
    }
    assert objs["InferenceService/iris"]["spec"]["predictor"]["model"]["storageUri"] == (
        "pvc://models/iris"
    )
    assert objs["ConfigMap/config-features"]["data"] == {
        "multi-container": "Enabled",
        "tag-header-based-routing": "Enabled",
    }
