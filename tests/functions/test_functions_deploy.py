"""`wonderland func deploy` against a real `wonderland up` control API."""

from __future__ import annotations

from pathlib import Path

import pytest

from wonderland.functions.create import create_function
from wonderland.functions.kube import KubeClient

from .conftest import Platform

pytestmark = pytest.mark.e2e


def test_deploy_creates_a_knative_service_with_functions_labels_and_scale(
    platform: Platform, tmp_path: Path
) -> None:
    root = create_function(tmp_path / "greeter").root
    with (root / "func.yaml").open("a") as f:
        f.write(
            "run:\n  envs:\n  - name: DB_PASSWORD\n    value: '{{ secret:db:password }}'\n"
            "deploy:\n  annotations:\n    team: blue\n  options:\n    scale:\n"
            "      min: 0\n      max: 2\n      target: 5\n"
        )
    missing = platform.cli("func", "deploy", "-p", str(root), "--no-wait")
    assert missing.returncode == 1
    assert "Secret default/db, which does not exist" in missing.stderr

    secret = tmp_path / "secret.yaml"
    secret.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: pw\n"
    )
    applied = platform.cli("apply", "-f", str(secret))
    assert applied.returncode == 0, applied.stderr
    deployed = platform.cli("func", "deploy", "-p", str(root), "--no-wait")
    assert deployed.returncode == 0, deployed.stderr
    assert "Created Service default/greeter" in deployed.stderr

    client = KubeClient.from_kubeconfig(platform.home / "kubeconfig")
    svc = client.get("Service", "default", "greeter")
    assert svc is not None
    assert svc["metadata"]["labels"]["function.knative.dev/name"] == "greeter"
    assert svc["metadata"]["labels"]["function.knative.dev/runtime"] == "python"
    template = svc["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["team"] == "blue"
    assert annotations["autoscaling.knative.dev/min-scale"] == "0"
    assert annotations["autoscaling.knative.dev/max-scale"] == "2"
    assert annotations["autoscaling.knative.dev/target"] == "5"
    container = template["spec"]["containers"][0]
    assert container["env"] == [
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
    ]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    generation = svc["metadata"]["generation"]

    # Unchanged code: the template is the same, so no new generation (no new revision).
    again = platform.cli("func", "deploy", "-p", str(root), "--no-wait")
    assert again.returncode == 0, again.stderr
    assert "Updated Service default/greeter" in again.stderr
    svc = client.get("Service", "default", "greeter")
    assert svc is not None and svc["metadata"]["generation"] == generation

    # Changed code: a new template, hence a new generation.
    func_py = root / "function" / "func.py"
    code = func_py.read_text()
    assert '"OK".encode()' in code
    func_py.write_text(code.replace('"OK".encode()', '"OK v2".encode()'))
    changed = platform.cli("func", "deploy", "-p", str(root), "--no-wait")
    assert changed.returncode == 0, changed.stderr
    svc = client.get("Service", "default", "greeter")
    assert svc is not None and svc["metadata"]["generation"] == generation + 1


def test_deploy_of_a_cloudevents_function_creates_its_subscriptions(
    platform: Platform, tmp_path: Path
) -> None:
    root = create_function(tmp_path / "audit", template="cloudevents").root
    with (root / "func.yaml").open("a") as f:
        f.write(
            "deploy:\n  subscriptions:\n  - source: pubsub\n    filters:\n      topic: orders\n"
        )
    deployed = platform.cli("func", "deploy", "-p", str(root), "--no-wait")
    assert deployed.returncode == 0, deployed.stderr
    client = KubeClient.from_kubeconfig(platform.home / "kubeconfig")
    subs = client.request("GET", "/apis/dapr.io/v2alpha1/namespaces/default/subscriptions")
    (sub,) = subs["items"]
    assert sub["spec"]["pubsubname"] == "pubsub"
    assert sub["spec"]["topic"] == "orders"
    assert sub["scopes"] == ["audit"]
    svc = client.get("Service", "default", "audit")
    assert svc is not None
    annotations = svc["spec"]["template"]["metadata"]["annotations"]
    assert annotations["dapr.io/enabled"] == "true"
    assert annotations["dapr.io/app-id"] == "audit"
    deleted = platform.cli("func", "delete", "-p", str(root))
    assert deleted.returncode == 0, deleted.stderr
    assert "Deleted Subscription default/" in deleted.stdout
    assert "Deleted Service default/audit" in deleted.stdout
    assert client.get("Service", "default", "audit") is None
    left = client.request("GET", "/apis/dapr.io/v2alpha1/namespaces/default/subscriptions")
    assert left["items"] == []
    again = platform.cli("func", "delete", "-p", str(root))
    assert again.returncode == 1
    assert "is not deployed" in again.stderr
