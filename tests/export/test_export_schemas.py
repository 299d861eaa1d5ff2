"""The vendored schemas match their manifest: versions, sources, files, kinds."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

import wonderland.platform  # noqa: F401  (registers every kind the platform serves)
from wonderland.api import registry
from wonderland.export import default_catalog

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "src" / "wonderland" / "export" / "schemas"
MANIFEST = json.loads((SCHEMAS / "manifest.json").read_text())

# The versions docs/cluster.md documents as working together.
PINNED = {
    "knative-serving": ("knative/serving", "knative-v1.21.3"),
    "kserve": ("kserve/kserve", "v0.20.0"),
    "dapr": ("dapr/dapr", "v1.18.3"),
    "kubeflow-trainer": ("kubeflow/trainer", "v2.3.0"),
    "katib": ("kubeflow/katib", "v0.19.0"),
    "kubeflow": ("kubeflow/kubeflow", "v1.10.0"),
    "jobset": ("kubernetes-sigs/jobset", "v0.12.0"),
    "kubernetes": ("kubernetes/kubernetes", "v1.33.0"),
}

# Kinds the platform serves that a user does not write for a cluster, or that have no
# upstream release to vendor yet.
NOT_WRITTEN = {
    ("serving.knative.dev/v1", "Revision"): "made by Knative from a Configuration",
    ("v1", "Event"): "written by controllers",
    ("v1", "Node"): "the machine itself",
    ("coordination.k8s.io/v1", "Lease"): "written by controllers",
    ("metrics.k8s.io/v1beta1", "NodeMetrics"): "read-only metrics",
    ("metrics.k8s.io/v1beta1", "PodMetrics"): "read-only metrics",
    ("kubeflow.org/v1beta1", "Trial"): "made by Katib from an Experiment",
    ("kubeflow.org/v1beta1", "Suggestion"): "made by Katib from an Experiment",
    ("trainer.kubeflow.org/v1alpha1", "OptimizationJob"): "in no Kubeflow Trainer release yet",
}


def sources() -> dict[str, dict[str, Any]]:
    return {source["name"]: source for source in MANIFEST["sources"]}


def test_every_source_is_pinned_to_the_documented_tag_and_commit() -> None:
    assert {name: (s["repo"], s["tag"]) for name, s in sources().items()} == PINNED
    for name, source in sources().items():
        assert source["licence"] == "Apache-2.0", name
        if name == "kubernetes":
            assert "kubernetes-validate 1.33.1" in source["via"]
        else:
            assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), name
        assert source["files"], name
        for item in source["files"]:
            assert re.fullmatch(r"[0-9a-f]{64}", item["sha256"]), item


def test_every_source_file_is_present_with_the_kinds_the_manifest_lists() -> None:
    on_disk = {p.name for p in SCHEMAS.glob("*.json")}
    assert on_disk == {"manifest.json"} | {f"{name}.json" for name in PINNED}
    for name, source in sources().items():
        body = json.loads((SCHEMAS / f"{name}.json").read_text())
        assert sorted(body["kinds"]) == source["kinds"], name
        paths = {item["path"] for item in source["files"]}
        for key, kind in body["kinds"].items():
            assert kind["file"] in paths, key
            assert kind["scope"] in ("Namespaced", "Cluster"), key


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {str(node["$ref"]).rsplit("/", 1)[-1]} if "$ref" in node else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


@pytest.mark.parametrize("name", sorted(PINNED))
def test_every_reference_resolves(name: str) -> None:
    body = json.loads((SCHEMAS / f"{name}.json").read_text())
    assert _refs(body) <= set(body.get("$defs", {}))


def test_the_kinds_of_the_task_are_vendored() -> None:
    catalog = default_catalog()
    wanted = [
        ("serving.knative.dev/v1", "Service"),
        ("serving.knative.dev/v1", "Configuration"),
        ("serving.knative.dev/v1", "Route"),
        ("serving.knative.dev/v1beta1", "DomainMapping"),
        ("serving.kserve.io/v1beta1", "InferenceService"),
        ("serving.kserve.io/v1alpha1", "ServingRuntime"),
        ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"),
        ("serving.kserve.io/v1alpha1", "InferenceGraph"),
        ("dapr.io/v1alpha1", "Component"),
        ("dapr.io/v2alpha1", "Subscription"),
        ("dapr.io/v1alpha1", "Subscription"),
        ("dapr.io/v1alpha1", "Configuration"),
        ("dapr.io/v1alpha1", "Resiliency"),
        ("trainer.kubeflow.org/v1alpha1", "TrainJob"),
        ("trainer.kubeflow.org/v1alpha1", "TrainingRuntime"),
        ("trainer.kubeflow.org/v1alpha1", "ClusterTrainingRuntime"),
        ("kubeflow.org/v1beta1", "Experiment"),
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "PersistentVolumeClaim"),
        ("batch/v1", "Job"),
        ("v1", "Pod"),
    ]
    missing = [pair for pair in wanted if catalog.get(*pair) is None]
    assert missing == []
    runtime = catalog.get("serving.kserve.io/v1alpha1", "ClusterServingRuntime")
    assert runtime is not None
    assert runtime.scope == "Cluster"


def test_every_kind_the_platform_accepts_has_a_schema_at_each_version() -> None:
    catalog = default_catalog()
    missing = [
        (api_version, kind.kind)
        for kind in registry.all_kinds()
        for api_version in kind.api_versions()
        if (api_version, kind.kind) not in NOT_WRITTEN
        and catalog.get(api_version, kind.kind) is None
    ]
    assert missing == []


def test_the_vendored_schemas_stay_small() -> None:
    # Descriptions and CEL rules are left out and shared sub-schemas stored once: the
    # four KServe CRDs alone are 2.4 MB upstream.
    total = sum(p.stat().st_size for p in SCHEMAS.glob("*.json"))
    assert total < 512 * 1024, total


def test_docs_name_the_vendored_versions() -> None:
    page = (ROOT / "docs" / "cluster.md").read_text()
    for _repo, tag in PINNED.values():
        assert tag in page, tag


def test_the_field_descriptions_come_from_the_pinned_sources() -> None:
    # descriptions.json.gz: what the schemas leave out, for the console's field docs
    packed = (SCHEMAS / "descriptions.json.gz").read_bytes()
    assert len(packed) < 160 * 1024, len(packed)
    body = json.loads(gzip.decompress(packed))
    pinned = {(s["repo"], s["tag"], s["commit"]) for s in MANIFEST["sources"]}
    for source in body["sources"]:
        if source["repo"] != "kubernetes-client/python":
            assert (source["repo"], source["tag"], source["commit"]) in pinned, source
    vendored = {kind for s in MANIFEST["sources"] for kind in s["kinds"]}
    assert set(body["kinds"]) - vendored == {"meta/v1/ObjectMeta"}
    texts = body["texts"]
    for paths in body["kinds"].values():
        assert all(0 <= i < len(texts) for i in paths.values())
    service = body["kinds"]["serving.knative.dev/v1/Service"]
    assert texts[service["spec.traffic[].percent"]].startswith("Percent indicates")
    assert "metadata.labels" in service  # a CRD's metadata is described as ObjectMeta
