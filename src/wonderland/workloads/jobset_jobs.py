"""The children of a JobSet: its Jobs and its PersistentVolumeClaims, built as
``constructJob``, ``labelAndAnnotateObject`` and ``createPVCsIfNecessary`` of
kubernetes-sigs/jobset v0.12 build them, and the typed view of a Job the controller reads.

A replicated job ``r`` of JobSet ``js`` has ``replicas`` Jobs named ``<js>-<r>-<index>``.
Each Job and its pod template carry the same labels and annotations (the ``jobset.sigs.k8s.io``
keys below), so every pod says which JobSet, replicated job, Job index and restart attempt it
belongs to.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from wonderland.api.owners import controller_ref
from wonderland.api.schemas.jobset import JobSetObject, ReplicatedJob, VolumeClaimTemplate
from wonderland.workloads.job_status import JobStatus
from wonderland.workloads.views import ObjectMetaView, View

__all__ = [
    "API_VERSION",
    "COORDINATOR_KEY",
    "EXCLUSIVE_KEY",
    "GLOBAL_REPLICAS_KEY",
    "GROUP_NAME_KEY",
    "GROUP_REPLICAS_KEY",
    "JOBSET_CONTROLLER",
    "JOBSET_NAME_KEY",
    "JOBSET_UID_KEY",
    "JOB_GLOBAL_INDEX_KEY",
    "JOB_GROUP_INDEX_KEY",
    "JOB_INDEX_KEY",
    "JOB_KEY",
    "JOB_RESTART_ATTEMPT_KEY",
    "NODE_SELECTOR_STRATEGY_KEY",
    "REPLICATED_JOB_NAME_KEY",
    "REPLICATED_JOB_REPLICAS_KEY",
    "RESTARTS_KEY",
    "ChildJob",
    "JobSetView",
    "build_claim",
    "build_job",
    "claim_name",
    "coordinator_endpoint",
    "job_hash_key",
    "job_name",
    "job_restart_attempts",
    "replicas_of",
    "subdomain",
]

Obj = dict[str, Any]
StrMap = dict[str, str]

API_VERSION = "jobset.x-k8s.io/v1alpha2"
JOBSET_CONTROLLER = "jobset.sigs.k8s.io/jobset-controller"
JOBSET_NAME_KEY = "jobset.sigs.k8s.io/jobset-name"
JOBSET_UID_KEY = "jobset.sigs.k8s.io/jobset-uid"
REPLICATED_JOB_NAME_KEY = "jobset.sigs.k8s.io/replicatedjob-name"
REPLICATED_JOB_REPLICAS_KEY = "jobset.sigs.k8s.io/replicatedjob-replicas"
GLOBAL_REPLICAS_KEY = "jobset.sigs.k8s.io/global-replicas"
JOB_INDEX_KEY = "jobset.sigs.k8s.io/job-index"
JOB_GLOBAL_INDEX_KEY = "jobset.sigs.k8s.io/job-global-index"
JOB_KEY = "jobset.sigs.k8s.io/job-key"
RESTARTS_KEY = "jobset.sigs.k8s.io/restart-attempt"
JOB_RESTART_ATTEMPT_KEY = "jobset.sigs.k8s.io/job-restart-attempt"
COORDINATOR_KEY = "jobset.sigs.k8s.io/coordinator"
GROUP_NAME_KEY = "jobset.sigs.k8s.io/group-name"
GROUP_REPLICAS_KEY = "jobset.sigs.k8s.io/group-replicas"
JOB_GROUP_INDEX_KEY = "jobset.sigs.k8s.io/job-group-index"
EXCLUSIVE_KEY = "alpha.jobset.sigs.k8s.io/exclusive-topology"
NODE_SELECTOR_STRATEGY_KEY = "alpha.jobset.sigs.k8s.io/node-selector"
NAMESPACED_JOB_KEY = "alpha.jobset.sigs.k8s.io/namespaced-job"
NO_SCHEDULE_TAINT_KEY = "alpha.jobset.sigs.k8s.io/no-schedule"
DEFAULT_GROUP = "default"


def job_name(jobset: str, replicated_job: str, index: int) -> str:
    """``<jobset>-<replicatedJob>-<index>`` (placement.GenJobName)."""
    return f"{jobset}-{replicated_job}-{index}"


def job_hash_key(namespace: str, name: str) -> str:
    """The SHA-1 of ``<namespace>/<job>`` in hex: the ``job-key`` label (jobHashKey)."""
    return hashlib.sha1(f"{namespace}/{name}".encode()).hexdigest()


def claim_name(jobset: str, template: str) -> str:
    """``<template>-<jobset>``: the claim a volume claim template makes (GeneratePVCName)."""
    return f"{template}-{jobset}"


def replicas_of(rjob: ReplicatedJob) -> int:
    return rjob.replicas if rjob.replicas is not None else 1


def group_of(rjob: ReplicatedJob) -> str:
    return rjob.groupName if rjob.groupName is not None else DEFAULT_GROUP


@dataclass(frozen=True)
class JobSetView:
    """A JobSet as the controller reads it: the typed object, its metadata and the restart
    counters of its status."""

    obj: JobSetObject
    meta: ObjectMetaView
    restarts: int = 0
    job_restarts: dict[str, list[int]] | None = None  # per replicated job, with RestartJob

    @property
    def replicated_jobs(self) -> list[ReplicatedJob]:
        return self.obj.spec.replicatedJobs or []

    def dns_hostnames(self) -> bool:
        network = self.obj.spec.network
        return bool(network is not None and network.enableDNSHostnames)

    def suspended(self) -> bool:
        return bool(self.obj.spec.suspend)


def subdomain(view: JobSetView) -> str:
    """``spec.network.subdomain``, else the JobSet's name (GetSubdomain)."""
    network = view.obj.spec.network
    if network is not None and network.subdomain:
        return network.subdomain
    return view.meta.name


def coordinator_endpoint(view: JobSetView) -> str:
    """``<jobset>-<replicatedJob>-<jobIndex>-<podIndex>.<subdomain>``: where the coordinator
    pod is reached (CoordinatorEndpoint); the caller checked that a coordinator is set."""
    coordinator = view.obj.spec.coordinator
    assert coordinator is not None
    return (
        f"{view.meta.name}-{coordinator.replicatedJob}-{coordinator.jobIndex or 0}-"
        f"{coordinator.podIndex or 0}.{subdomain(view)}"
    )


def _global_replicas(view: JobSetView) -> int:
    return sum(replicas_of(r) for r in view.replicated_jobs)


def _global_index(view: JobSetView, rjob: str, index: int) -> str:
    total = 0
    for candidate in view.replicated_jobs:
        if candidate.name == rjob:
            return str(total + index)
        total += replicas_of(candidate)
    return ""


def _group_index(view: JobSetView, group: str, rjob: str, index: int) -> str:
    total = 0
    for candidate in view.replicated_jobs:
        if group_of(candidate) == group:
            if candidate.name == rjob:
                return str(total + index)
            total += replicas_of(candidate)
    return ""


def _group_replicas(view: JobSetView, group: str) -> int:
    return sum(replicas_of(r) for r in view.replicated_jobs if group_of(r) == group)


def job_restart_attempts(view: JobSetView, rjob: ReplicatedJob) -> list[int]:
    """``status.replicatedJobsStatus[rjob].jobRestarts``, zeros when unset (getJobRestarts)."""
    found = (view.job_restarts or {}).get(rjob.name)
    return list(found) if found else [0] * replicas_of(rjob)


def _keys(view: JobSetView, rjob: ReplicatedJob, index: int, restart_job: bool) -> StrMap:
    """The labels (and, the same, annotations) every Job and pod template gets."""
    meta = view.meta
    group = group_of(rjob)
    keys = {
        JOBSET_NAME_KEY: meta.name,
        JOBSET_UID_KEY: meta.uid,
        REPLICATED_JOB_NAME_KEY: rjob.name,
        RESTARTS_KEY: str(view.restarts),
    }
    if restart_job:
        attempts = job_restart_attempts(view, rjob)
        keys[JOB_RESTART_ATTEMPT_KEY] = str(attempts[index] if index < len(attempts) else 0)
    keys.update(
        {
            REPLICATED_JOB_REPLICAS_KEY: str(replicas_of(rjob)),
            GLOBAL_REPLICAS_KEY: str(_global_replicas(view)),
            JOB_INDEX_KEY: str(index),
            JOB_KEY: job_hash_key(meta.namespace, job_name(meta.name, rjob.name, index)),
            JOB_GLOBAL_INDEX_KEY: _global_index(view, rjob.name, index),
            GROUP_NAME_KEY: group,
            GROUP_REPLICAS_KEY: str(_group_replicas(view, group)),
            JOB_GROUP_INDEX_KEY: _group_index(view, group, rjob.name, index),
        }
    )
    if view.obj.spec.coordinator is not None:
        keys[COORDINATOR_KEY] = coordinator_endpoint(view)
    return keys


def _label_and_annotate(
    meta: Obj, view: JobSetView, rjob: ReplicatedJob, index: int, restart_job: bool
) -> None:
    """labelAndAnnotateObject: the JobSet keys as labels and annotations, plus the exclusive
    placement annotations of the JobSet or the replicated job's template."""
    keys = _keys(view, rjob, index, restart_job)
    meta["labels"] = {**(meta.get("labels") or {}), **keys}
    annotations = {**(meta.get("annotations") or {}), **keys}
    for source in (
        view.meta.annotations,
        (rjob.template.metadata.annotations if rjob.template.metadata else None) or {},
    ):
        if EXCLUSIVE_KEY in source:
            annotations[EXCLUSIVE_KEY] = source[EXCLUSIVE_KEY]
            if NODE_SELECTOR_STRATEGY_KEY in source:
                annotations[NODE_SELECTOR_STRATEGY_KEY] = source[NODE_SELECTOR_STRATEGY_KEY]
    meta["annotations"] = annotations


def _mounts(pod_spec: Obj, volume: str) -> bool:
    for group in ("containers", "initContainers"):
        for container in pod_spec.get(group) or []:
            if any(m.get("name") == volume for m in container.get("volumeMounts") or []):
                return True
    return False


def build_job(view: JobSetView, rjob: ReplicatedJob, index: int, restart_job: bool) -> Obj:
    """Job ``index`` of replicated job ``rjob`` (constructJob), owned by the JobSet."""
    meta = view.meta
    template = rjob.template
    template_meta = template.metadata
    name = job_name(meta.name, rjob.name, index)
    job_meta: Obj = {
        "name": name,
        "namespace": meta.namespace,
        "labels": dict((template_meta.labels if template_meta else None) or {}),
        "annotations": dict((template_meta.annotations if template_meta else None) or {}),
        "ownerReferences": [
            controller_ref(
                {"metadata": {"name": meta.name, "uid": meta.uid}}, API_VERSION, "JobSet"
            )
        ],
    }
    spec = copy.deepcopy(template.spec.model_dump(exclude_none=True))
    pod_template = spec["template"]
    pod_meta = pod_template.setdefault("metadata", {})
    _label_and_annotate(job_meta, view, rjob, index, restart_job)
    _label_and_annotate(pod_meta, view, rjob, index, restart_job)
    pod_spec = pod_template["spec"]
    if view.dns_hostnames():
        # Indexed Jobs give each pod the hostname <job>-<index>; with the subdomain the pod
        # is <jobset>-<rjob>-<jobIndex>-<podIndex>.<subdomain> (a headless Service's DNS).
        pod_spec["subdomain"] = subdomain(view)
    annotations = job_meta["annotations"]
    if EXCLUSIVE_KEY in annotations and NODE_SELECTOR_STRATEGY_KEY in annotations:
        selector = pod_spec.setdefault("nodeSelector", {})
        selector[NAMESPACED_JOB_KEY] = f"{meta.namespace}_{name}"
        pod_spec["tolerations"] = [
            *(pod_spec.get("tolerations") or []),
            {"key": NO_SCHEDULE_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
        ]
    spec["suspend"] = view.suspended()
    for policy in view.obj.spec.volumeClaimPolicies or []:
        for claim in policy.templates or []:
            volume = _template_name(claim)
            if not _mounts(pod_spec, volume):
                continue
            pod_spec["volumes"] = [
                *(pod_spec.get("volumes") or []),
                {
                    "name": volume,
                    "persistentVolumeClaim": {"claimName": claim_name(meta.name, volume)},
                },
            ]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta, "spec": spec}


def _template_name(template: VolumeClaimTemplate) -> str:
    return (template.metadata.name if template.metadata else None) or ""


def build_claim(view: JobSetView, template: VolumeClaimTemplate, owned: bool) -> Obj:
    """The claim of a volume claim template; ``owned`` (retention Delete) makes the JobSet
    its controller, so it goes when the JobSet goes."""
    meta = view.meta
    template_meta = template.metadata
    labels = dict((template_meta.labels if template_meta else None) or {})
    labels[JOBSET_NAME_KEY] = meta.name
    claim_meta: Obj = {
        "name": claim_name(meta.name, _template_name(template)),
        "namespace": meta.namespace,
        "labels": labels,
    }
    annotations = template_meta.annotations if template_meta else None
    if annotations:
        claim_meta["annotations"] = dict(annotations)
    if owned:
        claim_meta["ownerReferences"] = [
            controller_ref(
                {"metadata": {"name": meta.name, "uid": meta.uid}}, API_VERSION, "JobSet"
            )
        ]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": claim_meta,
        "spec": template.spec.model_dump(exclude_none=True),
    }


# -- the Jobs a JobSet owns --------------------------------------------------------


class _ChildJobSpec(View):
    parallelism: int | None = None
    completions: int | None = None
    suspend: bool | None = None


class _ChildJobObject(View):
    metadata: ObjectMetaView = Field(default_factory=ObjectMetaView)
    spec: _ChildJobSpec = Field(default_factory=_ChildJobSpec)
    status: JobStatus = Field(default_factory=JobStatus)


@dataclass
class ChildJob:
    """A Job of a JobSet: the stored object and its typed view."""

    raw: Obj
    meta: ObjectMetaView
    spec: _ChildJobSpec
    status: JobStatus

    @classmethod
    def parse(cls, raw: Obj) -> ChildJob:
        body = {k: raw.get(k) for k in ("metadata", "spec", "status") if raw.get(k) is not None}
        view = _ChildJobObject.model_validate(body)
        return cls(raw, view.metadata, view.spec, view.status)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def replicated_job(self) -> str:
        return self.meta.labels.get(REPLICATED_JOB_NAME_KEY, "")

    def finished(self) -> str:
        """``Complete``, ``Failed`` or ``""`` (JobFinished)."""
        condition = self.status.finished()
        return condition.type if condition is not None else ""

    def suspended(self) -> bool:
        return bool(self.spec.suspend)

    def ready(self) -> bool:
        """Ready and succeeded pods reach min(parallelism, completions)."""
        pods = self.spec.parallelism if self.spec.parallelism is not None else 1
        if self.spec.completions is not None and self.spec.completions < pods:
            pods = self.spec.completions
        return self.status.succeeded + (self.status.ready or 0) >= pods

    def failure(self) -> tuple[str, str, str] | None:
        """(reason, message, lastTransitionTime) of the Failed condition, when it failed."""
        for condition in self.status.conditions:
            if condition.type == "Failed" and condition.status == "True":
                return condition.reason, condition.message, condition.lastTransitionTime or ""
        return None
