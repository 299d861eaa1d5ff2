"""What the API server and the JobSet webhook do to a JobSet before it is stored
(kubernetes-sigs/jobset v0.12, its feature gates at their defaults unless the platform turns
``RestartJob`` on): the defaults of the webhook and of the CRD schema, the CRD's own checks
(immutable policies, ``StartupPolicy and DependsOn APIs are mutually exclusive``, minimums),
the webhook's checks on create (:mod:`wonderland.workloads.jobset_validation`) and on update
(``replicatedJobs`` and ``managedBy`` are immutable; while the JobSet is suspended the pod
templates' labels, annotations, nodeSelector, tolerations and schedulingGates may change).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic import ValidationError

from wonderland.api.admission import Admission
from wonderland.api.schemas.jobset import JobSetObject
from wonderland.errors import InvalidError
from wonderland.workloads.jobset_jobs import JOBSET_NAME_KEY, NODE_SELECTOR_STRATEGY_KEY
from wonderland.workloads.jobset_validation import validate_create

__all__ = [
    "JOBSETS",
    "PRIORITY_KEY",
    "default_jobset",
    "default_jobset_pod",
    "install",
    "validate_update",
]

Obj = dict[str, Any]
JOBSETS = "jobsets.jobset.x-k8s.io"
PRIORITY_KEY = "jobset.sigs.k8s.io/priority"

# -- defaults ------------------------------------------------------------------------


def default_jobset(obj: Obj) -> None:
    """The webhook's defaults and the CRD schema's (replicas 1, groupName ``default``,
    restartStrategy Recreate, retention Delete)."""
    spec = obj.get("spec")
    if spec is None:
        spec = obj["spec"] = {}
    if not isinstance(spec, dict):
        return
    if spec.get("successPolicy") is None:
        spec["successPolicy"] = {"operator": "All"}
    if spec.get("startupPolicy") is None:
        spec["startupPolicy"] = {"startupPolicyOrder": "AnyOrder"}
    for rjob in spec.get("replicatedJobs") or []:
        if not isinstance(rjob, dict):
            continue
        rjob.setdefault("groupName", "default")
        rjob.setdefault("replicas", 1)
        job_spec = (rjob.get("template") or {}).get("spec")
        if not isinstance(job_spec, dict):
            continue
        if job_spec.get("completionMode") is None:
            job_spec["completionMode"] = "Indexed"
        pod_spec = (job_spec.get("template") or {}).get("spec")
        if isinstance(pod_spec, dict) and not pod_spec.get("restartPolicy"):
            pod_spec["restartPolicy"] = "OnFailure"
    network = spec.get("network")
    if network is None:
        network = spec["network"] = {}
    if isinstance(network, dict):
        if network.get("enableDNSHostnames") is None:
            network["enableDNSHostnames"] = True
        if network.get("publishNotReadyAddresses") is None:
            network["publishNotReadyAddresses"] = True
    policy = spec.get("failurePolicy")
    if isinstance(policy, dict):
        policy.setdefault("restartStrategy", "Recreate")
        for i, rule in enumerate(policy.get("rules") or []):
            if isinstance(rule, dict) and not rule.get("name"):
                rule["name"] = f"failurePolicyRule{i}"
    for claims in spec.get("volumeClaimPolicies") or []:
        if not isinstance(claims, dict):
            continue
        retention = claims.get("retentionPolicy")
        if retention is None:
            claims["retentionPolicy"] = {"whenDeleted": "Delete"}
        elif isinstance(retention, dict):
            retention.setdefault("whenDeleted", "Delete")


def default_jobset_pod(obj: Obj) -> None:
    """The JobSet pod webhook's defaults: a pod of a JobSet (unless it uses the node selector
    placement strategy) gets its priority as the ``jobset.sigs.k8s.io/priority`` label. Runs
    after the pod defaults, which give every pod a priority as the Priority plugin does."""
    meta = obj.get("metadata")
    spec = obj.get("spec")
    if not isinstance(meta, dict) or not isinstance(spec, dict):
        return
    annotations = meta.get("annotations") or {}
    if JOBSET_NAME_KEY not in annotations or NODE_SELECTOR_STRATEGY_KEY in annotations:
        return
    if spec.get("priority") is not None:
        meta["labels"] = {**(meta.get("labels") or {}), PRIORITY_KEY: str(spec["priority"])}


# -- update --------------------------------------------------------------------------

_IMMUTABLE_CEL = (
    ("network", "object"),
    ("successPolicy", "object"),
    ("failurePolicy", "object"),
    ("startupPolicy", "object"),
    ("volumeClaimPolicies", "array"),
)
# What may change in a replicated job's pod template while the JobSet is (or is being)
# suspended, for queueing systems such as Kueue.
_SUSPENDED_MUTABLE_META = ("labels", "annotations")
_SUSPENDED_MUTABLE_SPEC = ("nodeSelector", "tolerations", "schedulingGates")


def _pruned(value: Any) -> Any:
    """``value`` without nulls, empty lists and empty maps: apimachinery's semantic equality
    treats them as unset."""
    if isinstance(value, dict):
        out = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def validate_update(new: Obj, old: Obj) -> None:
    """The CRD's transition rules, then ValidateUpdate of the webhook."""
    spec = new.get("spec") or {}
    before = old.get("spec") or {}
    for key, kind in _IMMUTABLE_CEL:
        if key in spec and key in before and _pruned(spec[key]) != _pruned(before[key]):
            raise InvalidError(f"spec.{key}", f'Invalid value: "{kind}": Value is immutable')
    old_rjobs = {
        r.get("name"): r for r in before.get("replicatedJobs") or [] if isinstance(r, dict)
    }
    for i, rjob in enumerate(spec.get("replicatedJobs") or []):
        previous = old_rjobs.get(rjob.get("name")) if isinstance(rjob, dict) else None
        if (
            previous is not None
            and "dependsOn" in rjob
            and "dependsOn" in previous
            and _pruned(rjob["dependsOn"]) != _pruned(previous["dependsOn"])
        ):
            raise InvalidError(
                f"spec.replicatedJobs[{i}].dependsOn",
                'Invalid value: "array": Value is immutable',
            )
    suspending = bool(before.get("suspend")) or bool(spec.get("suspend"))
    munged = copy.deepcopy(spec.get("replicatedJobs") or [])
    if suspending:
        for rjob in munged:
            previous = old_rjobs.get(rjob.get("name")) if isinstance(rjob, dict) else None
            if previous is None:
                continue
            _mask_pod_template(rjob, previous)
    old_list = before.get("replicatedJobs") or []
    if _pruned(munged) != _pruned(old_list):
        raise InvalidError(
            "spec.replicatedJobs",
            "Invalid value: field is immutable (" + _first_change(munged, old_list) + "; only "
            "the pod template's labels, annotations, nodeSelector, tolerations and "
            "schedulingGates may change, while the JobSet is suspended)",
        )
    if spec.get("managedBy") != before.get("managedBy"):
        value = json.dumps(spec.get("managedBy"))
        raise InvalidError("spec.managedBy", f"Invalid value: {value}: field is immutable")


def _mask_pod_template(rjob: Obj, previous: Obj) -> None:
    """Give ``rjob`` the old values of what may change while suspended."""
    new_pod = ((rjob.get("template") or {}).get("spec") or {}).get("template")
    old_pod = ((previous.get("template") or {}).get("spec") or {}).get("template") or {}
    if not isinstance(new_pod, dict):
        return
    new_meta = new_pod.setdefault("metadata", {})
    old_meta = old_pod.get("metadata") or {}
    for key in _SUSPENDED_MUTABLE_META:
        new_meta.pop(key, None)
        if key in old_meta:
            new_meta[key] = old_meta[key]
    new_spec = new_pod.get("spec")
    old_spec = old_pod.get("spec") or {}
    if isinstance(new_spec, dict):
        for key in _SUSPENDED_MUTABLE_SPEC:
            new_spec.pop(key, None)
            if key in old_spec:
                new_spec[key] = old_spec[key]


def _first_change(new: list[Any], old: list[Any], path: str = "replicatedJobs") -> str:
    """Where two values first differ, as a field path."""
    a, b = _pruned(new), _pruned(old)

    def walk(x: Any, y: Any, at: str) -> str | None:
        if x == y:
            return None
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y)):
                found = walk(x.get(key), y.get(key), f"{at}.{key}")
                if found is not None:
                    return found
            return at
        if isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for index, (p, q) in enumerate(zip(x, y, strict=True)):
                found = walk(p, q, f"{at}[{index}]")
                if found is not None:
                    return found
        return at

    return f"{walk(a, b, path) or path} changed"


# -- registration ------------------------------------------------------------------------


class _JobSetAdmission:
    """The checks of one platform: ``restart_job`` is its RestartJob feature gate."""

    def __init__(self, restart_job: bool = False) -> None:
        self.restart_job = restart_job

    def check(self, new: Obj, old: Obj | None) -> None:
        obj = copy.deepcopy(new)
        # On create the store checks before it fills defaults; check what will be stored.
        default_jobset(obj)
        try:
            JobSetObject.model_validate(obj)
        except ValidationError:
            return  # the schema check reports it, with the field path
        _check_cel(obj)
        if old is None:
            validate_create(obj, self.restart_job)
        else:
            validate_update(obj, old)


def _check_cel(obj: Obj) -> None:
    spec = obj.get("spec") or {}
    startup = spec.get("startupPolicy") or {}
    if startup.get("startupPolicyOrder") == "InOrder" and any(
        isinstance(r, dict) and "dependsOn" in r for r in spec.get("replicatedJobs") or []
    ):
        raise InvalidError(
            "spec",
            'Invalid value: "object": StartupPolicy and DependsOn APIs are mutually exclusive',
        )
    ttl = spec.get("ttlSecondsAfterFinished")
    if isinstance(ttl, int) and ttl < 0:
        raise InvalidError(
            "spec.ttlSecondsAfterFinished",
            f"Invalid value: {ttl}: spec.ttlSecondsAfterFinished in body should be greater than "
            "or equal to 0",
        )


def install(admission: Admission, restart_job: bool = False) -> None:
    """Register the JobSet defaults and checks into ``admission``; ``restart_job`` turns
    the RestartJob feature gate on."""
    admission.register_default(JOBSETS, default_jobset)
    admission.register(JOBSETS, _JobSetAdmission(restart_job).check)
    admission.register_default("pods", default_jobset_pod)
