"""The Knative Service ``func deploy`` creates, built from ``func.yaml`` as Knative's
deployer builds it (knative/func ``pkg/knative/deployer.go``, ``pkg/k8s/labels``):

* labels ``function.knative.dev/name``, ``function.knative.dev/runtime`` (and the
  older ``boson.dev/*`` twins), plus ``deploy.labels``;
* ``deploy.annotations`` on the Service and on the revision template;
* ``deploy.options.scale.{min,max,metric,target,utilization}`` as
  ``autoscaling.knative.dev/{min-scale,max-scale,metric,target,
  target-utilization-percentage}`` on the template;
* ``deploy.options.resources.limits.concurrency`` as ``containerConcurrency``;
* probes on ``/health/liveness`` and ``/health/readiness``;
* ``run.envs`` as ``env`` / ``envFrom`` (see ``envs.to_container_env``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wonderland.functions.envs import to_container_env
from wonderland.functions.funcyaml import FunctionConfig

__all__ = [
    "FUNCTION_NAME_LABEL",
    "FUNCTION_RUNTIME_LABEL",
    "SOURCE_ANNOTATION",
    "build_service",
    "scale_annotations",
]

FUNCTION_NAME_LABEL = "function.knative.dev/name"
FUNCTION_RUNTIME_LABEL = "function.knative.dev/runtime"
SOURCE_ANNOTATION = "function.knative.dev/source"
DIGEST_ANNOTATION = "function.knative.dev/source-digest"
_AUTOSCALING = "autoscaling.knative.dev/"
_SCALE_KEYS = {
    "min": "min-scale",
    "max": "max-scale",
    "metric": "metric",
    "target": "target",
    "utilization": "target-utilization-percentage",
}


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def scale_annotations(scale: Mapping[str, Any]) -> dict[str, str]:
    """``deploy.options.scale`` as ``autoscaling.knative.dev/*`` annotations."""
    return {
        _AUTOSCALING + key: _number(scale[field])
        for field, key in _SCALE_KEYS.items()
        if scale.get(field) is not None
    }


def function_labels(config: FunctionConfig) -> dict[str, str]:
    name, runtime = config.name, config.runtime or "python"
    labels = {
        "boson.dev/function": "true",
        "boson.dev/runtime": runtime,
        "function.knative.dev": "true",
        FUNCTION_NAME_LABEL: name,
        FUNCTION_RUNTIME_LABEL: runtime,
    }
    for label in config.labels:
        labels[str(label["key"])] = str(label.get("value") or "")
    return labels


def build_service(
    config: FunctionConfig,
    *,
    image: str,
    namespace: str,
    environ: Mapping[str, str],
    source_digest: str = "",
    source_path: str = "",
    extra_annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ``serving.knative.dev/v1`` Service for the function."""
    env, env_from = to_container_env(config.run_envs, environ)
    health = config.section("deploy").get("healthEndpoints") or {}
    container: dict[str, Any] = {
        "image": image,
        "livenessProbe": {
            "httpGet": {"path": health.get("liveness") or "/health/liveness"},
        },
        "readinessProbe": {
            "httpGet": {"path": health.get("readiness") or "/health/readiness"},
            "successThreshold": 1,
        },
    }
    if env:
        container["env"] = env
    if env_from:
        container["envFrom"] = env_from
    resources = (config.section("deploy").get("options") or {}).get("resources") or {}
    limits = {k: v for k, v in (resources.get("limits") or {}).items() if k != "concurrency"}
    requests = dict(resources.get("requests") or {})
    if limits or requests:
        container["resources"] = {
            k: v for k, v in (("limits", limits), ("requests", requests)) if v
        }
    annotations = dict(config.annotations)
    annotations.update(extra_annotations or {})
    template_annotations = dict(annotations)
    template_annotations.update(scale_annotations(config.scale))
    if source_digest:
        # A new digest is a new template, hence a new revision on every code change.
        template_annotations[DIGEST_ANNOTATION] = source_digest
    service_annotations = dict(annotations)
    if source_path:
        service_annotations[SOURCE_ANNOTATION] = source_path
    labels = function_labels(config)
    spec: dict[str, Any] = {"containers": [container]}
    if config.concurrency is not None:
        spec["containerConcurrency"] = config.concurrency
    account = config.section("deploy").get("serviceAccountName")
    if account:
        spec["serviceAccountName"] = account
    metadata: dict[str, Any] = {"name": config.name, "namespace": namespace, "labels": labels}
    if service_annotations:
        metadata["annotations"] = service_annotations
    template_meta: dict[str, Any] = {"labels": dict(labels)}
    if template_annotations:
        template_meta["annotations"] = template_annotations
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {"template": {"metadata": template_meta, "spec": spec}},
    }
