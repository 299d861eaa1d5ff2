"""The Knative Service and Dapr Subscriptions `func deploy` creates; env templates."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path

import pytest

from wonderland.errors import ConfigError, NotFoundError
from wonderland.functions.build import build_function, function_requirements
from wonderland.functions.create import create_function
from wonderland.functions.envs import decode_secret_data, parse_template, resolve_envs
from wonderland.functions.funcyaml import parse_config
from wonderland.functions.manifest import build_service
from wonderland.functions.subscriptions import build_subscriptions

CONFIG = """\
specVersion: 0.36.0
name: shop
runtime: python
created: 2025-01-01T00:00:00Z
run:
  envs:
  - name: PLAIN
    value: x
  - name: FROM_ENV
    value: '{{ env:SHOP_TOKEN }}'
  - name: DB_PASSWORD
    value: '{{ secret:db:password }}'
  - name: MODE
    value: '{{configMap:settings:mode}}'
  - value: '{{ secret:all-keys }}'
deploy:
  annotations:
    team: blue
  labels:
  - key: tier
    value: backend
  options:
    scale: {min: 1, max: 5, metric: rps, target: 100, utilization: 70}
    resources:
      limits: {concurrency: 4, memory: 256Mi}
  healthEndpoints: {readiness: /ready}
  subscriptions:
  - source: orders-pubsub
    filters: {topic: orders, type: order.created}
  - source: audit
"""

PLATFORM: dict[tuple[str, str], dict[str, str]] = {
    ("Secret", "db"): {"password": "s3cret"},
    ("ConfigMap", "settings"): {"mode": "fast"},
    ("Secret", "all-keys"): {"A": "1", "B": "2"},
}


def lookup(kind: str, namespace: str, name: str) -> Mapping[str, str]:
    assert namespace == "default"
    if (kind, name) not in PLATFORM:
        raise NotFoundError(f"{kind} {name} not found")
    return PLATFORM[(kind, name)]


def test_service_carries_knative_labels_annotations_scale_and_probes() -> None:
    config = parse_config(CONFIG)
    svc = build_service(
        config, image="dev.local/shop:latest", namespace="default", environ={"SHOP_TOKEN": "t"}
    )
    assert svc["apiVersion"] == "serving.knative.dev/v1"
    assert svc["kind"] == "Service"
    meta = svc["metadata"]
    assert meta["labels"]["function.knative.dev/name"] == "shop"
    assert meta["labels"]["function.knative.dev/runtime"] == "python"
    assert meta["labels"]["tier"] == "backend"
    assert meta["annotations"]["team"] == "blue"
    template = svc["spec"]["template"]
    ann = template["metadata"]["annotations"]
    assert ann["autoscaling.knative.dev/min-scale"] == "1"
    assert ann["autoscaling.knative.dev/max-scale"] == "5"
    assert ann["autoscaling.knative.dev/metric"] == "rps"
    assert ann["autoscaling.knative.dev/target"] == "100"
    assert ann["autoscaling.knative.dev/target-utilization-percentage"] == "70"
    spec = template["spec"]
    assert spec["containerConcurrency"] == 4
    container = spec["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveness"
    assert container["resources"] == {"limits": {"memory": "256Mi"}}
    assert container["env"] == [
        {"name": "PLAIN", "value": "x"},
        {"name": "FROM_ENV", "value": "t"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
    ]
    assert container["envFrom"] == [{"secretRef": {"name": "all-keys"}}]


def test_deploy_needs_local_env_values_to_be_set() -> None:
    with pytest.raises(ConfigError, match=r"run.envs\[1\] \(FROM_ENV\).*SHOP_TOKEN"):
        build_service(parse_config(CONFIG), image="i", namespace="default", environ={})


def test_run_resolves_every_template_from_the_platform() -> None:
    envs = resolve_envs(parse_config(CONFIG).run_envs, {"SHOP_TOKEN": "t"}, lookup, "default")
    assert envs == {
        "PLAIN": "x",
        "FROM_ENV": "t",
        "DB_PASSWORD": "s3cret",
        "MODE": "fast",
        "A": "1",
        "B": "2",
    }


def test_run_errors_name_the_missing_piece() -> None:
    envs = [{"name": "K", "value": "{{ secret:db:user }}"}]
    with pytest.raises(NotFoundError, match="has no key 'user' \\(keys: password\\)"):
        resolve_envs(envs, {}, lookup, "default")
    with pytest.raises(ConfigError, match="no platform is reachable"):
        resolve_envs(envs, {}, None, "default")
    with pytest.raises(NotFoundError, match="Secret nope not found"):
        resolve_envs([{"name": "K", "value": "{{ secret:nope:k }}"}], {}, lookup, "default")


def test_template_parsing() -> None:
    assert parse_template("plain") is None
    t = parse_template("{{ configmap:a:b }}")
    assert t is not None and (t.kind, t.name, t.key) == ("configMap", "a", "b")
    t = parse_template("{{env:HOME}}")
    assert t is not None and (t.kind, t.name, t.key) == ("env", "HOME", None)
    secret = {"data": {"k": base64.b64encode(b"v").decode()}, "stringData": {"s": "t"}}
    assert decode_secret_data(secret) == {"k": "v", "s": "t"}


def test_subscriptions_become_scoped_dapr_subscriptions() -> None:
    subs = build_subscriptions(parse_config(CONFIG), "default")
    assert len(subs) == 2
    first, second = subs
    assert first["apiVersion"] == "dapr.io/v2alpha1"
    assert first["spec"]["pubsubname"] == "orders-pubsub"
    assert first["spec"]["topic"] == "orders"
    assert first["spec"]["routes"] == {
        "rules": [{"match": 'event.type == "order.created"', "path": "/"}]
    }
    assert first["scopes"] == ["shop"]
    assert second["spec"]["topic"] == "shop"  # the function's name by default
    assert second["spec"]["routes"] == {"default": "/"}


def test_build_uses_this_interpreter_when_it_already_has_every_dependency(
    tmp_path: Path,
) -> None:
    root = create_function(tmp_path / "deps", template="cloudevents").root
    names = [r.name for r in function_requirements(root)]
    assert names == ["httpx", "cloudevents", "pytest", "pytest-asyncio"]
    built = build_function(root)
    assert built.cached and built.installed == ()
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "requirements.txt").write_text("parliament-functions==0.1.0\n# comment\nhttpx\n")
    assert [r.name for r in function_requirements(legacy)] == ["httpx"]
