"""One InferenceService component (predictor, transformer, explainer) -> a Knative Service.

Mirrors KServe's serverless mode: the Knative Service ``<isvc>-<component>`` with the
``kserve-container``, the component's scaling knobs as Knative autoscaling annotations,
``containerConcurrency``/``timeoutSeconds`` on the template, and the canary traffic split
(``prev``/``latest`` tags) when ``canaryTrafficPercent`` is set.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from wonderland.errors import InvalidError

__all__ = [
    "ISVC_LABEL",
    "ComponentSpecError",
    "component_ksvc",
    "custom_container",
    "logger_env",
    "model_container",
    "traffic_for",
    "transformer_container",
]

Obj = dict[str, Any]

ISVC_LABEL = "serving.kserve.io/inferenceservice"
COMPONENT_LABEL = "component"
MOUNT = "/mnt/models"

# KServe's batcher defaults (pkg/batcher/handler.go).
BATCH_SIZE_DEFAULT = 32
BATCH_LATENCY_DEFAULT_MS = 5000


class ComponentSpecError(InvalidError):
    """A component's spec cannot run; ``reason`` is the condition reason to report."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _template_vars(text: str, name: str, namespace: str, labels: dict[str, str]) -> str:
    """KServe's ``{{.Name}}``, ``{{.Namespace}}``, ``{{.Labels.x}}`` in runtime args/env."""

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key == "Name":
            return name
        if key == "Namespace":
            return namespace
        if key.startswith("Labels."):
            return labels.get(key[len("Labels.") :], "")
        return m.group(0)

    return re.sub(r"\{\{\s*\.([A-Za-z.]+)\s*\}\}", sub, text)


def _set_flag(args: list[str], flag: str, value: str) -> list[str]:
    """``--flag=value``: replace an existing ``--flag=x`` / ``--flag x`` or append."""
    spellings = {flag, flag.replace("_", "-")}
    out: list[str] = []
    skip = False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        head = a.split("=", 1)[0]
        if head in spellings:
            if "=" not in a and i + 1 < len(args):
                skip = True
            continue
        out.append(a)
    return [*out, f"{flag}={value}"]


def _has_flag(args: list[str], flag: str) -> bool:
    spellings = {flag, flag.replace("_", "-")}
    return any(a.split("=", 1)[0] in spellings for a in args)


def _merge_env(base: list[Obj], extra: list[Obj]) -> list[Obj]:
    names = {e["name"] for e in extra}
    return [e for e in base if e.get("name") not in names] + list(extra)


def model_container(
    isvc: Obj, model: Obj, runtime: Obj, model_dir: Path | None, builtin: bool
) -> Obj:
    """The ``kserve-container`` for ``predictor.model`` on ``runtime``.

    ``/mnt/models`` in the runtime's args and env becomes the local model folder; the
    runtime's fixed ports become the replica's ``$(PORT)`` (REST, or gRPC for
    ``grpc-v2``, which gets an ``h2c`` port as KServe's gRPC predictors do).
    """
    meta = isvc["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    labels = dict(meta.get("labels") or {})
    containers = (runtime.get("spec") or {}).get("containers") or []
    if not containers:
        raise ComponentSpecError(
            "InvalidPredictorSpec", f"the runtime {runtime['metadata']['name']} has no containers"
        )
    base = copy.deepcopy(containers[0])
    local = str(model_dir) if model_dir is not None else MOUNT

    def render(text: str) -> str:
        text = _template_vars(text, name, namespace, labels)
        return text.replace(MOUNT, local) if model_dir is not None else text

    args = [render(a) for a in base.get("args") or []]
    args += [render(a) for a in model.get("args") or []]
    env = [
        {**e, "value": render(str(e["value"]))} if "value" in e else e
        for e in base.get("env") or []
    ]
    env = _merge_env(env, list(model.get("env") or []))
    protocol = model.get("protocolVersion") or "v1"
    container: Obj = {
        "name": "kserve-container",
        "image": model.get("image") or base.get("image") or "wonderland/model-server:latest",
    }
    command = model.get("command") or base.get("command")
    if command:
        container["command"] = list(command)
    if protocol == "grpc-v2":
        args = _set_flag(args, "--grpc_port", "$(PORT)")
        args = _set_flag(args, "--http_port", "0")
        container["ports"] = [{"name": "h2c", "containerPort": 8081, "protocol": "TCP"}]
    else:
        args = _set_flag(args, "--http_port", "$(PORT)")
        if builtin:
            args = _set_flag(args, "--enable_grpc", "false")
            # Ready only once the model is loaded, so a cold start answers with the model.
            container["readinessProbe"] = {
                "httpGet": {"path": "/v2/health/ready"},
                "periodSeconds": 0,
                "failureThreshold": 600,
            }
        container["ports"] = [{"containerPort": 8080, "protocol": "TCP"}]
    if builtin:
        fmt = str((model.get("modelFormat") or {}).get("name") or "")
        if fmt and not _has_flag(args, "--model_format"):
            args.append(f"--model_format={fmt}")
    batcher = (isvc.get("spec") or {}).get("predictor", {}).get("batcher")
    if batcher is not None and builtin:
        size = batcher.get("maxBatchSize") or BATCH_SIZE_DEFAULT
        latency = batcher.get("maxLatency") or BATCH_LATENCY_DEFAULT_MS
        args = _set_flag(args, "--max_batch_size", str(size))
        args = _set_flag(args, "--max_latency_ms", str(latency))
    container["args"] = args
    env.append({"name": "PROTOCOL", "value": protocol})
    container["env"] = env
    for key in ("resources", "workingDir", "livenessProbe", "envFrom"):
        value = model.get(key, base.get(key))
        if value:
            container[key] = copy.deepcopy(value)
    probe = model.get("readinessProbe") or base.get("readinessProbe")
    if probe:
        container["readinessProbe"] = copy.deepcopy(probe)
    return container


def transformer_container(isvc: Obj, component: Obj) -> Obj:
    """The transformer's container with the args KServe appends when they are absent:
    ``--model_name``, ``--predictor_host <isvc>-predictor.<namespace>``, ``--http_port``
    (the replica's ``$(PORT)``) and ``--workers`` when ``containerConcurrency`` is set."""
    meta = isvc["metadata"]
    containers = component.get("containers") or []
    if not containers:
        raise ComponentSpecError(
            "InvalidTransformerSpec", "spec.transformer.containers: give the transformer container"
        )
    container: Obj = copy.deepcopy(containers[0])
    container.setdefault("name", "kserve-container")
    args = list(container.get("args") or [])
    if not _has_flag(args, "--model_name"):
        args += ["--model_name", meta["name"]]
    if not _has_flag(args, "--predictor_host"):
        args += ["--predictor_host", f"{meta['name']}-predictor.{meta['namespace']}"]
    if not _has_flag(args, "--http_port"):
        args += ["--http_port", "$(PORT)"]
    cc = component.get("containerConcurrency")
    if cc and not _has_flag(args, "--workers"):
        args += ["--workers", str(cc)]
    # One machine, many pods: the model server's default gRPC port (8081) would collide
    # between transformers; they take REST from the gateway.
    is_serve = (container.get("command") or [])[-2:] == ["wonderland", "serve"]
    grpc_named = _has_flag(args, "--grpc_port") or _has_flag(args, "--enable_grpc")
    if is_serve and not grpc_named:
        args.append("--enable_grpc=false")
    container["args"] = args
    # KServe tells custom transformers the predictor's protocol through PROTOCOL.
    predictor_model = ((isvc.get("spec") or {}).get("predictor") or {}).get("model") or {}
    protocol = predictor_model.get("protocolVersion") or "v1"
    env = [e for e in container.get("env") or [] if e.get("name") != "PROTOCOL"]
    container["env"] = [*env, {"name": "PROTOCOL", "value": protocol}]
    return container


def custom_container(component: Obj, which: str) -> Obj:
    containers = component.get("containers") or []
    if not containers:
        raise ComponentSpecError(
            f"Invalid{which.capitalize()}Spec",
            f"spec.{which}: give either model (modelFormat, storageUri) or containers",
        )
    if len(containers) > 1:
        raise ComponentSpecError(
            f"Invalid{which.capitalize()}Spec",
            f"spec.{which}.containers: one container per component runs on this platform",
        )
    container: Obj = copy.deepcopy(containers[0])
    container.setdefault("name", "kserve-container")
    return container


def _annotations(isvc: Obj, component: Obj) -> dict[str, str]:
    meta = isvc["metadata"]
    out = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    out.update(component.get("annotations") or {})
    min_replicas = component.get("minReplicas")
    out["autoscaling.knative.dev/min-scale"] = str(1 if min_replicas is None else min_replicas)
    if component.get("maxReplicas"):
        out["autoscaling.knative.dev/max-scale"] = str(component["maxReplicas"])
    if component.get("scaleTarget"):
        out["autoscaling.knative.dev/target"] = str(component["scaleTarget"])
    metric = component.get("scaleMetric")
    if metric in ("concurrency", "rps"):
        out["autoscaling.knative.dev/metric"] = metric
        out["autoscaling.knative.dev/class"] = "kpa.autoscaling.knative.dev"
    elif metric in ("cpu", "memory"):
        raise ComponentSpecError(
            "InvalidScaleMetric",
            f"scaleMetric {metric!r} needs Kubernetes' HPA; on this platform use "
            "'concurrency' or 'rps' (Knative's KPA)",
        )
    return out


def logger_env(isvc: Obj, which: str, component: Obj) -> list[Obj]:
    """The payload logger's settings for a component with ``logger`` (see
    :mod:`wonderland.inference.payload_logger`); KServe's agent takes the same as flags."""
    logger = component.get("logger")
    if not logger:
        return []
    url = logger.get("url")
    if not url:
        raise ComponentSpecError(
            f"Invalid{which.capitalize()}Spec",
            f"spec.{which}.logger.url: give the URL that receives the CloudEvents",
        )
    meta = isvc["metadata"]
    values = {
        "KSERVE_LOGGER_URL": str(url),
        "KSERVE_LOGGER_MODE": str(logger.get("mode") or "all"),
        "KSERVE_LOGGER_METADATA_HEADERS": ",".join(logger.get("metadataHeaders") or []),
        "KSERVE_INFERENCESERVICE": meta["name"],
        "KSERVE_NAMESPACE": meta["namespace"],
        "KSERVE_COMPONENT": which,
        "KSERVE_ENDPOINT": "default",
    }
    wanted = logger.get("metadataAnnotations") or []
    if wanted:
        have = meta.get("annotations") or {}
        values["KSERVE_LOGGER_ANNOTATIONS"] = json.dumps(
            {k: have[k] for k in wanted if k in have}, sort_keys=True
        )
    return [{"name": k, "value": v} for k, v in values.items()]


def traffic_for(component: Obj, rolled_out: str | None) -> list[Obj]:
    """KServe's rollout: with ``canaryTrafficPercent`` and a revision that once had all
    the traffic, the latest revision gets the canary share (tag ``latest``) and that
    revision the rest (tag ``prev``); otherwise the latest revision gets everything."""
    canary = component.get("canaryTrafficPercent")
    if canary is None or not rolled_out:
        return [{"latestRevision": True, "percent": 100}]
    canary = max(0, min(100, int(canary)))
    return [
        {"tag": "latest", "latestRevision": True, "percent": canary},
        {
            "tag": "prev",
            "latestRevision": False,
            "revisionName": rolled_out,
            "percent": 100 - canary,
        },
    ]


def component_ksvc(
    isvc: Obj, which: str, component: Obj, container: Obj, rolled_out: str | None
) -> Obj:
    """The Knative Service for one component of ``isvc``."""
    meta = isvc["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    labels = {
        **(meta.get("labels") or {}),
        **(component.get("labels") or {}),
        ISVC_LABEL: name,
        COMPONENT_LABEL: which,
        "serving.kserve.io/component": which,
        "app": f"isvc.{name}-{which}",
    }
    template_spec: Obj = {"containers": [container]}
    if component.get("containerConcurrency") is not None:
        template_spec["containerConcurrency"] = int(component["containerConcurrency"])
    if component.get("timeout") is not None:
        template_spec["timeoutSeconds"] = int(component["timeout"])
    if component.get("serviceAccountName"):
        template_spec["serviceAccountName"] = component["serviceAccountName"]
    if component.get("volumes"):
        template_spec["volumes"] = copy.deepcopy(component["volumes"])
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": f"{name}-{which}",
            "namespace": namespace,
            "labels": labels,
            "annotations": {},
            "ownerReferences": [
                {
                    "apiVersion": isvc["apiVersion"],
                    "kind": isvc["kind"],
                    "name": name,
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "template": {
                "metadata": {"labels": labels, "annotations": _annotations(isvc, component)},
                "spec": template_spec,
            },
            "traffic": traffic_for(component, rolled_out),
        },
    }
