from __future__ import annotations

from typing import Any

import pytest

from wonderland.api import registry
from wonderland.api.admission import Admission
from wonderland.api.core_checks import core_admission
from wonderland.errors import InvalidError, NotFoundError

admission = core_admission()  # what every store checks, with no platform installed


def ksvc(**container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "hello"},
        "spec": {"template": {"spec": {"containers": [{"image": "app", **container}]}}},
    }


@pytest.mark.parametrize(
    ("name", "resource"),
    [
        ("ksvc", "services.serving.knative.dev"),
        ("kservice", "services.serving.knative.dev"),
        ("rev", "revisions.serving.knative.dev"),
        ("route", "routes.serving.knative.dev"),
        ("config", "configurations.serving.knative.dev"),
        ("configurations.dapr.io", "configurations.dapr.io"),
        ("isvc", "inferenceservices.serving.kserve.io"),
        ("component", "components.dapr.io"),
        ("cm", "configmaps"),
        ("secret", "secrets"),
        ("Secrets", "secrets"),
        ("services.v1.serving.knative.dev", "services.serving.knative.dev"),
    ],
)
def test_lookup_accepts_kubectl_names(name: str, resource: str) -> None:
    assert registry.lookup(name).resource == resource


def test_unknown_type_names_known_ones() -> None:
    with pytest.raises(NotFoundError, match='doesn\'t have a resource type "deployments"'):
        registry.lookup("deployments")


def test_subscription_accepts_both_versions() -> None:
    v1 = registry.for_object("dapr.io/v1alpha1", "Subscription")
    v2 = registry.for_object("dapr.io/v2alpha1", "Subscription")
    assert v1 is v2 and v1.resource == "subscriptions.dapr.io"


@pytest.mark.parametrize(
    ("container", "path", "message"),
    [
        ({"ports": [{"containerPort": "80"}]}, "containers[0].ports[0].containerPort", "integer"),
        ({"args": "--x"}, "containers[0].args", "list"),
        (
            {"securityContext": {"sysctls": []}},
            "containers[0].securityContext.sysctls",
            "unknown field",
        ),
        ({"env": [{"name": "A", "value": 1}]}, "containers[0].env[0].value", "string"),
        (
            {"readinessProbe": {"httpGet": {"path": 1}}},
            "containers[0].readinessProbe.httpGet.path",
            "string",
        ),
    ],
)
def test_type_errors_name_the_field_path(
    container: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(InvalidError) as info:
        admission.admit(ksvc(**container))
    assert info.value.field == f"spec.template.spec.{path}"
    assert message in str(info.value)


def test_valid_manifests_of_every_kind_pass() -> None:
    good = [
        ksvc(
            env=[
                {"name": "A", "value": "1"},
                {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
                {"name": "P", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
            ports=[{"containerPort": 8080, "name": "http1"}],
            readinessProbe={"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
            resources={"limits": {"cpu": "1", "memory": "1Gi"}},
        ),
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "sklearn-iris"},
            "spec": {
                "predictor": {
                    "minReplicas": 0,
                    "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"},
                }
            },
        },
        {
            "apiVersion": "dapr.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "statestore"},
            "spec": {
                "type": "state.redis",
                "version": "v1",
                "metadata": [
                    {"name": "redisHost", "value": "localhost:6379"},
                    {"name": "redisPassword", "secretKeyRef": {"name": "r", "key": "p"}},
                ],
            },
            "auth": {"secretStore": "kubernetes"},
            "scopes": ["app"],
        },
        {
            "apiVersion": "dapr.io/v2alpha1",
            "kind": "Subscription",
            "metadata": {"name": "s"},
            "spec": {"pubsubname": "p", "topic": "t", "routes": {"default": "/x"}},
            "scopes": ["frontend"],
        },
        {
            "apiVersion": "dapr.io/v1alpha1",
            "kind": "Subscription",
            "metadata": {"name": "s"},
            "spec": {"pubsubname": "p", "topic": "t", "route": "/x"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "labels": {"app": "x"}},
            "stringData": {"password": "p"},
            "type": "Opaque",
        },
    ]
    for obj in good:
        assert admission.admit(obj) is None


def test_metadata_rules() -> None:
    bad = ksvc()
    bad["metadata"]["name"] = "Hello_World"
    with pytest.raises(InvalidError, match=r"metadata\.name.*not a valid name"):
        admission.admit(bad)
    bad = ksvc()
    bad["metadata"]["labels"] = {"replicas": 3}
    with pytest.raises(InvalidError, match=r"metadata\.labels\.replicas: expected string"):
        admission.admit(bad)


def test_unknown_api_version_is_invalid() -> None:
    obj = ksvc()
    obj["apiVersion"] = "serving.knative.dev/v2"
    with pytest.raises(InvalidError, match=r"use apiVersion serving\.knative\.dev/v1"):
        admission.admit(obj)


def test_registered_checks_run_after_schema() -> None:
    checks = Admission()

    def no_latest(new: dict[str, Any], old: dict[str, Any] | None) -> None:
        if new["spec"]["containers"][0]["image"].endswith(":latest"):
            raise InvalidError("spec.containers[0].image", "pin a version")

    checks.register("revisions.serving.knative.dev", no_latest)
    rev = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": {"name": "r"},
        "spec": {"containers": [{"image": "app:latest"}]},
    }
    with pytest.raises(InvalidError, match="pin a version"):
        checks.admit(rev)
    rev["spec"]["containers"][0]["image"] = "app:1.0"
    checks.admit(rev)
    with pytest.raises(InvalidError, match=r"spec\.containers\[0\]\.image: expected string"):
        checks.admit({**rev, "spec": {"containers": [{"image": 1}]}})  # schema first
