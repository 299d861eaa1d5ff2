"""Kubeflow's PodDefault admission webhook, as a mutating step of pod creation.

Every Pod the platform stores (a Job's, a TrainJob node's, a trial's, a revision's
replica, a notebook's) passes here first: the PodDefaults of the pod's namespace whose
``spec.selector`` matches its labels are merged into it with the rules of
``components/admission-webhook/main.go``:

- env, volumeMounts (by name and by mount path), volumes, tolerations (by key),
  imagePullSecrets, initContainers and sidecars (by name), annotations and labels (by key)
  are added when absent; an entry present with a different value is a conflict;
- envFrom is appended; command and args fill a container that has none;
  serviceAccountName and automountServiceAccountToken are set (the last PodDefault wins);
- each applied PodDefault is recorded as the annotation
  ``poddefault.admission.kubeflow.org/poddefault-<name>: <resourceVersion>``;
- a pod annotated ``poddefault.admission.kubeflow.org/exclude: "true"`` is left alone.

A conflict refuses the pod with the webhook's message (``conflict occurred while applying
poddefaults: ...``); the controller that made it records the refusal as an event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from wonderland.api.admission import Admission, ObjectLister
from wonderland.api.schemas.kubeflow import PodDefaultSpec
from wonderland.api.selectors import from_label_selector, matches
from wonderland.errors import AdmissionDeniedError

__all__ = [
    "ANNOTATION_PREFIX",
    "EXCLUDE_ANNOTATION",
    "PODDEFAULTS",
    "WEBHOOK",
    "apply_pod_defaults",
    "install",
    "matching",
]

Obj = dict[str, Any]

PODDEFAULTS = "poddefaults.kubeflow.org"
ANNOTATION_PREFIX = "poddefault.admission.kubeflow.org"
EXCLUDE_ANNOTATION = f"{ANNOTATION_PREFIX}/exclude"
# the name Kubeflow's manifests give the webhook (``$(podDefaultsDeploymentName).kubeflow.org``)
WEBHOOK = "admission-webhook-deployment.kubeflow.org"
_ISTIO_PROXY = "istio-proxy"


class _Default:
    """One matching PodDefault: its name, resourceVersion and spec as plain fragments."""

    def __init__(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        self.name: str = meta.get("name", "")
        self.resource_version: str = str(meta.get("resourceVersion", ""))
        self.typed = PodDefaultSpec.model_validate(obj.get("spec") or {})
        self.spec: Obj = obj.get("spec") or {}

    def items(self, field: str) -> list[Obj]:
        value = self.spec.get(field) or []
        return [v for v in value if isinstance(v, dict)]


def _show(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _merge_keyed(
    existing: Sequence[Obj],
    defaults: Iterable[_Default],
    field: str,
    key: Callable[[Obj], object],
    what: str,
    errors: list[str],
    shown: Callable[[Obj], object] | None = None,
) -> list[Obj]:
    """The webhook's ``merge*``: add entries whose key is new; the same key with another
    value is a conflict (one message per clash)."""
    seen: dict[object, Obj] = {key(v): v for v in existing}
    merged = list(existing)
    for pd in defaults:
        for entry in pd.items(field):
            k = key(entry)
            found = seen.get(k)
            if found is None:
                seen[k] = entry
                merged.append(entry)
            elif found != entry:
                errors.append(
                    f"merging {what} for {pd.name} has a conflict on "
                    f"{shown(entry) if shown else k}: \n{_show(entry)}\ndoes not match\n"
                    f"{_show(found)}\n in container"
                )
    return merged


def _merge_mounts(
    existing: Sequence[Obj], defaults: Sequence[_Default], errors: list[str]
) -> list[Obj]:
    merged = _merge_keyed(
        existing, defaults, "volumeMounts", lambda v: v.get("name"), "volume mounts", errors
    )
    by_path: dict[object, Obj] = {v.get("mountPath"): v for v in existing}
    for pd in defaults:
        for entry in pd.items("volumeMounts"):
            path = entry.get("mountPath")
            found = by_path.get(path)
            if found is None:
                by_path[path] = entry
            elif found != entry:
                errors.append(
                    f"merging volume mounts for {pd.name} has a conflict on mount path {path}: "
                    f"\n{_show(entry)}\ndoes not match\n{_show(found)}\n in container"
                )
    return merged


def _merge_map(existing: Obj, defaults: Sequence[_Default], field: str, errors: list[str]) -> Obj:
    out = dict(existing)
    for pd in defaults:
        for k, v in (pd.spec.get(field) or {}).items():
            if k not in out:
                out[k] = v
            elif out[k] != v:
                errors.append(
                    f"merging has conflict on {k}: \n{_show(v)}\ndoes not match\n"
                    f"{_show(out[k])}\n in pod"
                )
    return out


def _aggregate(errors: list[str]) -> str:
    """``utilerrors.NewAggregate(errs).Error()``: one message alone, else ``[a, b]``
    (repeated messages once)."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def matching(pod: Obj, poddefaults: Iterable[Obj]) -> list[Obj]:
    """The PodDefaults (of the pod's namespace) whose selector matches the pod's labels."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    namespace = meta.get("namespace") or "default"
    out = []
    for pd in poddefaults:
        pd_meta = pd.get("metadata") or {}
        if (pd_meta.get("namespace") or "default") != namespace:
            continue
        selector = (pd.get("spec") or {}).get("selector") or {}
        if matches(from_label_selector(selector), labels):
            out.append(pd)
    return out


def apply_pod_defaults(pod: Obj, poddefaults: Sequence[Obj]) -> None:
    """Merge ``poddefaults`` (already matched) into ``pod`` in place, or raise
    :class:`AdmissionDeniedError` with the webhook's conflict message, leaving it as it was."""
    if not poddefaults:
        return
    defaults = [_Default(pd) for pd in poddefaults]
    meta = pod.setdefault("metadata", {})
    spec = pod.setdefault("spec", {})
    errors: list[str] = []
    volumes = _merge_keyed(
        spec.get("volumes") or [], defaults, "volumes", lambda v: v.get("name"), "volumes", errors
    )
    tolerations = _merge_keyed(
        spec.get("tolerations") or [],
        defaults,
        "tolerations",
        lambda t: t.get("key"),
        "tolerations",
        errors,
    )
    pull_secrets = _merge_keyed(
        spec.get("imagePullSecrets") or [],
        defaults,
        "imagePullSecrets",
        lambda s: s.get("name"),
        "imagePullSecret",
        errors,
    )
    containers: list[Obj] = []
    for container in spec.get("containers") or []:
        merged = dict(container)
        merged["env"] = _merge_keyed(
            container.get("env") or [], defaults, "env", lambda e: e.get("name"), "env", errors
        )
        merged["volumeMounts"] = _merge_mounts(
            container.get("volumeMounts") or [], defaults, errors
        )
        env_from = list(container.get("envFrom") or [])
        for pd in defaults:
            env_from.extend(pd.items("envFrom"))
        merged["envFrom"] = env_from
        if container.get("name") != _ISTIO_PROXY:
            for pd in defaults:
                if merged.get("command") is None and pd.typed.command is not None:
                    merged["command"] = list(pd.typed.command)
                if merged.get("args") is None and pd.typed.args is not None:
                    merged["args"] = list(pd.typed.args)
        for field in ("env", "volumeMounts", "envFrom"):
            if not merged[field] and field not in container:
                del merged[field]
        containers.append(merged)
    annotations = _merge_map(meta.get("annotations") or {}, defaults, "annotations", errors)
    labels = _merge_map(meta.get("labels") or {}, defaults, "labels", errors)
    init = _merge_keyed(
        spec.get("initContainers") or [],
        defaults,
        "initContainers",
        lambda c: c.get("name"),
        "containers",
        errors,
    )
    containers = _merge_keyed(
        containers, defaults, "sidecars", lambda c: c.get("name"), "containers", errors
    )
    if errors:
        names = ",".join(pd.name for pd in defaults)
        raise AdmissionDeniedError(
            WEBHOOK,
            f"conflict occurred while applying poddefaults: {names} on pod: "
            f"{meta.get('name') or ''} err: {_aggregate(errors)}",
        )
    for field, value in (
        ("volumes", volumes),
        ("tolerations", tolerations),
        ("imagePullSecrets", pull_secrets),
        ("initContainers", init),
    ):
        if value:
            spec[field] = value
    spec["containers"] = containers
    for pd in defaults:
        if pd.typed.automountServiceAccountToken is not None:
            spec["automountServiceAccountToken"] = pd.typed.automountServiceAccountToken
        if pd.typed.serviceAccountName:
            spec["serviceAccountName"] = pd.typed.serviceAccountName
            spec.pop("serviceAccount", None)
    for pd in defaults:
        annotations[f"{ANNOTATION_PREFIX}/poddefault-{pd.name}"] = pd.resource_version
    meta["annotations"] = annotations
    if labels:
        meta["labels"] = labels


def _mutate_pod(pod: Obj, lister: ObjectLister) -> None:
    meta = pod.get("metadata") or {}
    if (meta.get("annotations") or {}).get(EXCLUDE_ANNOTATION) == "true":
        return
    namespace = meta.get("namespace") or "default"
    found, _ = lister.list(PODDEFAULTS, namespace)
    found = [pd for pd in found if (pd.get("metadata") or {}).get("namespace") == namespace]
    if not found:
        return
    apply_pod_defaults(pod, matching(pod, found))


def install(admission: Admission) -> None:
    """Register the webhook as the pods' mutating step in ``admission`` (idempotent)."""
    admission.register_mutation("pods", _mutate_pod)
