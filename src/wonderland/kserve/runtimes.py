"""Built-in ClusterServingRuntimes and KServe's runtime selection.

Every built-in runtime runs ``wonderland serve`` (the Open Inference Protocol model
server), named as KServe names its runtimes so manifests that say
``runtime: kserve-sklearnserver`` work unchanged. Selection follows
``pkg/apis/serving/v1beta1/predictor_model.go``: namespace ServingRuntimes first, then
ClusterServingRuntimes, each group newest first then by name; a named runtime must
support the model format; without a name only ``autoSelect`` runtimes are candidates and
the highest ``priority`` among those supporting the format and protocol wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

__all__ = [
    "BUILTIN_RUNTIMES",
    "CLUSTER_RUNTIMES",
    "NAMESPACE_RUNTIMES",
    "RuntimeChoice",
    "builtin_runtimes",
    "select_runtime",
]

Obj = dict[str, Any]

NAMESPACE_RUNTIMES = "servingruntimes.serving.kserve.io"
CLUSTER_RUNTIMES = "clusterservingruntimes.serving.kserve.io"
MANAGED_BY = "app.kubernetes.io/managed-by"

# name -> (formats [(name, versions, priority)], protocols, model server format flag)
BUILTIN_RUNTIMES: dict[str, tuple[list[tuple[str, list[str], int]], list[str]]] = {
    "kserve-sklearnserver": ([("sklearn", ["1"], 1)], ["v1", "v2", "grpc-v2"]),
    "kserve-xgbserver": ([("xgboost", [""], 1)], ["v1", "v2", "grpc-v2"]),
    "kserve-lgbserver": ([("lightgbm", [""], 1)], ["v1", "v2", "grpc-v2"]),
    "kserve-tritonserver": ([("onnx", ["1"], 1), ("pytorch", [""], 1)], ["v1", "v2", "grpc-v2"]),
    "kserve-huggingfaceserver": ([("huggingface", ["1"], 1)], ["v1", "v2", "grpc-v2"]),
    # KServe serves MLflow models on MLServer; here the same model server does, any
    # MLflow version (see docs/tracking.md)
    "kserve-mlserver": ([("mlflow", [""], 1)], ["v1", "v2", "grpc-v2"]),
}


def builtin_runtimes() -> list[Obj]:
    """The ClusterServingRuntime objects installed with the platform."""
    out = []
    for name, (formats, protocols) in BUILTIN_RUNTIMES.items():
        supported = [
            {"name": fmt, **({"version": v} if v else {}), "autoSelect": True, "priority": prio}
            for fmt, versions, prio in formats
            for v in versions
        ]
        out.append(
            {
                "apiVersion": "serving.kserve.io/v1alpha1",
                "kind": "ClusterServingRuntime",
                "metadata": {
                    "name": name,
                    "labels": {MANAGED_BY: "wonderland"},
                    "annotations": {
                        "prometheus.kserve.io/port": "8080",
                        "prometheus.kserve.io/path": "/metrics",
                    },
                },
                "spec": {
                    "supportedModelFormats": supported,
                    "protocolVersions": protocols,
                    "containers": [
                        {
                            "name": "kserve-container",
                            "image": "wonderland/model-server:latest",
                            "command": ["wonderland", "serve"],
                            "args": [
                                "--model_name={{.Name}}",
                                "--model_dir=/mnt/models",
                                "--http_port=8080",
                            ],
                        }
                    ],
                },
            }
        )
    return out


@dataclass(frozen=True)
class RuntimeChoice:
    """The runtime an InferenceService's predictor runs on."""

    name: str
    cluster: bool
    obj: Obj


class RuntimeSelectionError(Exception):
    """Why no runtime fits: ``reason`` is KServe's (NoSupportingRuntime, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _version_matches(wanted: str | None, offered: str | None) -> bool:
    """KServe: no version asked matches any; otherwise the asked version's leading parts
    must equal the offered one ("1" offers 1.x.y)."""
    if not wanted or not offered:
        return True
    try:
        w = Version(wanted).release
        o = Version(offered).release
    except InvalidVersion:
        return wanted == offered
    return w[: len(o)] == o


def _supports_format(rt: Obj, fmt: str, version: str | None, auto_only: bool) -> int | None:
    """The priority with which ``rt`` supports the format (None: not at all)."""
    best: int | None = None
    for f in (rt.get("spec") or {}).get("supportedModelFormats") or []:
        if str(f.get("name", "")).lower() != fmt.lower():
            continue
        if auto_only and not f.get("autoSelect"):
            continue
        if not _version_matches(version, f.get("version")):
            continue
        prio = int(f.get("priority") or 0)
        best = prio if best is None else max(best, prio)
    return best


def _protocols(rt: Obj) -> list[str]:
    return list((rt.get("spec") or {}).get("protocolVersions") or ["v1"])


def _sorted(items: list[Obj]) -> list[Obj]:
    by_name = sorted(items, key=lambda o: o["metadata"]["name"])
    return sorted(by_name, key=lambda o: o["metadata"].get("creationTimestamp") or "", reverse=True)


def select_runtime(
    model: Obj, namespace_runtimes: list[Obj], cluster_runtimes: list[Obj]
) -> RuntimeChoice:
    """Pick the runtime for ``predictor.model`` as KServe does (see the module docstring)."""
    fmt_spec = model.get("modelFormat") or {}
    fmt = str(fmt_spec.get("name") or "")
    version = fmt_spec.get("version")
    protocol = model.get("protocolVersion") or "v1"
    groups = [(False, _sorted(namespace_runtimes)), (True, _sorted(cluster_runtimes))]
    named = model.get("runtime")
    if named:
        for cluster, items in groups:
            for rt in items:
                if rt["metadata"]["name"] != named:
                    continue
                if (rt.get("spec") or {}).get("disabled"):
                    raise RuntimeSelectionError(
                        "RuntimeDisabled", f"the runtime {named!r} is disabled; enable it"
                    )
                if _supports_format(rt, fmt, version, auto_only=False) is None:
                    offered = ", ".join(
                        str(f.get("name"))
                        for f in (rt.get("spec") or {}).get("supportedModelFormats") or []
                    )
                    raise RuntimeSelectionError(
                        "NoSupportingRuntime",
                        f"the runtime {named!r} does not support model format {fmt!r}"
                        + (f" version {version}" if version else "")
                        + f" (it supports: {offered or 'nothing'})",
                    )
                if protocol not in _protocols(rt):
                    raise RuntimeSelectionError(
                        "NoSupportingRuntime",
                        f"the runtime {named!r} does not support protocol {protocol!r} "
                        f"(it supports: {', '.join(_protocols(rt))})",
                    )
                return RuntimeChoice(named, cluster, rt)
        raise RuntimeSelectionError(
            "RuntimeNotRecognized",
            f"no ServingRuntime or ClusterServingRuntime named {named!r}; create it or "
            "remove spec.predictor.model.runtime to select one automatically",
        )
    candidates: list[tuple[int, bool, Obj]] = []
    for cluster, items in groups:
        for rt in items:
            if (rt.get("spec") or {}).get("disabled"):
                continue
            prio = _supports_format(rt, fmt, version, auto_only=True)
            if prio is None or protocol not in _protocols(rt):
                continue
            candidates.append((prio, cluster, rt))
    if not candidates:
        known = sorted(
            {
                str(f.get("name"))
                for _, items in groups
                for rt in items
                for f in (rt.get("spec") or {}).get("supportedModelFormats") or []
            }
        )
        raise RuntimeSelectionError(
            "NoSupportingRuntime",
            f"no runtime supports model format {fmt!r}"
            + (f" version {version}" if version else "")
            + f" with protocol {protocol!r}; supported formats: {', '.join(known)}",
        )
    # Stable sort: equal priorities keep the namespace-first, newest-first order.
    best = sorted(candidates, key=lambda c: -c[0])[0]
    return RuntimeChoice(best[2]["metadata"]["name"], best[1], best[2])
