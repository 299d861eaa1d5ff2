"""``deploy.subscriptions``: deliver events from a pub/sub topic to the function.

On a cluster Knative's ``func`` turns each entry into an Eventing Trigger on the broker
named by ``source``, filtered by ``filters``. Here the broker is a Dapr pub/sub
component: ``source`` names the component, the ``topic`` filter names the topic
(default: the function's name) and every other filter must match the CloudEvent
attribute of the same name. Each entry becomes a ``dapr.io/v2alpha1`` Subscription
scoped to the function's app id, so the function's sidecar delivers matching events
to it in CloudEvents form.
"""

from __future__ import annotations

import json
import re
from typing import Any

from wonderland.functions.funcyaml import FunctionConfig
from wonderland.functions.kube import KubeClient
from wonderland.functions.manifest import FUNCTION_NAME_LABEL

__all__ = ["apply_subscriptions", "build_subscriptions", "dapr_annotations"]

_DNS_UNSAFE = re.compile(r"[^a-z0-9-]+")


def dapr_annotations(config: FunctionConfig) -> dict[str, str]:
    """The ``dapr.io/*`` annotations Knative's deployer puts on a function's Service."""
    return {
        "dapr.io/app-id": config.name,
        "dapr.io/app-port": "8080",
        "dapr.io/enable-api-logging": "true",
        "dapr.io/enabled": "true",
        "dapr.io/metrics-port": "9092",
    }


def _cel_string(value: str) -> str:
    return json.dumps(value)


def build_subscriptions(config: FunctionConfig, namespace: str) -> list[dict[str, Any]]:
    """One Dapr Subscription per ``deploy.subscriptions`` entry."""
    out: list[dict[str, Any]] = []
    for index, entry in enumerate(config.subscriptions):
        filters = dict(entry.get("filters") or {})
        topic = filters.pop("topic", None) or config.name
        source = str(entry["source"])
        base = _DNS_UNSAFE.sub("-", f"{config.name}-{source}-{topic}".lower()).strip("-")
        name = f"{base[:55]}-{index}"
        routes: dict[str, Any] = {"default": "/"} if not filters else {}
        if filters:
            match = " && ".join(
                f"event.{attr} == {_cel_string(str(value))}"
                for attr, value in sorted(filters.items())
            )
            routes = {"rules": [{"match": match, "path": "/"}]}
        out.append(
            {
                "apiVersion": "dapr.io/v2alpha1",
                "kind": "Subscription",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {FUNCTION_NAME_LABEL: config.name},
                },
                "spec": {"pubsubname": source, "topic": str(topic), "routes": routes},
                "scopes": [config.name],
            }
        )
    return out


def apply_subscriptions(client: KubeClient, config: FunctionConfig, namespace: str) -> list[str]:
    """Create or update the function's Subscriptions; return their names."""
    names: list[str] = []
    for subscription in build_subscriptions(config, namespace):
        client.apply(subscription)
        names.append(subscription["metadata"]["name"])
    return names
