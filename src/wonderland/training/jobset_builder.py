"""A TrainJob's JobSet, as upstream's ``jobset`` plugin builds it (``plugins/jobset``):
the runtime's template with the initializers' ``STORAGE_URI`` and credentials, the
trainer's image, command, args and env, one pod per node (``parallelism`` and
``completions`` set to the pod set's count), the labels and annotations the runtime
propagates, ``suspend`` and the TrainJob as controller owner."""

from __future__ import annotations

from typing import Any

from wonderland.api.owners import controller_ref
from wonderland.api.schemas.core import (
    Container,
    EnvFromSource,
    EnvVar,
    LocalObjectReference,
    NameRef,
    PersistentVolumeClaimVolumeSource,
    PodSpec,
    Volume,
    VolumeMount,
)
from wonderland.api.schemas.trainer import TrainJobObject
from wonderland.training.runtime_info import (
    DATASET_INITIALIZER,
    MODEL_INITIALIZER,
    NODE,
    TRAINER,
    RuntimeInfo,
    upsert_env,
    upsert_volume,
    upsert_volume_mount,
)

__all__ = ["JOBSET_API_VERSION", "build_jobset"]

JOBSET_API_VERSION = "jobset.x-k8s.io/v1alpha2"
STORAGE_URI = "STORAGE_URI"
PVC_MOUNT_ROOT = "/mnt/pvc"

Obj = dict[str, Any]


def build_jobset(info: RuntimeInfo, job: TrainJobObject) -> Obj:
    """The JobSet object (a dict ready for the store) for ``job``."""
    spec = job.spec
    for ps in info.pod_sets:
        rjob = ps.job
        ancestor = ps.ancestor
        pod = rjob.template.spec.template.spec
        for container in pod.containers:
            if ancestor == DATASET_INITIALIZER and container.name == DATASET_INITIALIZER:
                source = spec.initializer.dataset if spec.initializer else None
                rjob.replicas = 1
                if source is not None:
                    _initializer(pod, container, source.storageUri, source.env, source.secretRef)
            elif ancestor == MODEL_INITIALIZER and container.name == MODEL_INITIALIZER:
                model = spec.initializer.model if spec.initializer else None
                rjob.replicas = 1
                if model is not None:
                    _initializer(pod, container, model.storageUri, model.env, model.secretRef)
            elif ancestor == TRAINER and container.name == NODE and spec.trainer is not None:
                rjob.replicas = 1
                if spec.trainer.image is not None:
                    container.image = spec.trainer.image
                if spec.trainer.command is not None:
                    container.command = list(spec.trainer.command)
                if spec.trainer.args is not None:
                    container.args = list(spec.trainer.args)
        if ancestor in (DATASET_INITIALIZER, MODEL_INITIALIZER, TRAINER):
            rjob.replicas = 1
        # syncParallelCount: one pod per node of this replicated job.
        rjob.template.spec.parallelism = ps.count
        rjob.template.spec.completions = ps.count
        # A node that fails is replaced by a new pod (restartPolicy Never) instead of being
        # restarted in place (the JobSet's default, OnFailure): a failed pod is then
        # finished, not active, so it and its log stay when the Job fails, where with
        # OnFailure the Job controller deletes it. A runtime that sets a policy keeps it.
        pod_spec = rjob.template.spec.template.spec
        if pod_spec.restartPolicy is None:
            pod_spec.restartPolicy = "Never"
    template = info.template
    template.spec.suspend = spec.suspend
    meta = job.metadata
    return {
        "apiVersion": JOBSET_API_VERSION,
        "kind": "JobSet",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": dict(info.labels),
            "annotations": dict(info.annotations),
            "ownerReferences": [controller_ref(job.model_dump(exclude_none=True))],
        },
        "spec": template.spec.model_dump(exclude_none=True, by_alias=True),
    }


def _initializer(
    pod: PodSpec,
    container: Container,
    uri: str | None,
    env: list[EnvVar] | None,
    secret: LocalObjectReference | None,
) -> None:
    if uri is not None:
        upsert_env(container, EnvVar(name=STORAGE_URI, value=uri))
        if uri.startswith("pvc://"):
            _mount_claim(pod, container, uri[len("pvc://") :].partition("/")[0])
    upsert_env(container, *(env or []))
    if secret is not None:
        container.envFrom = [
            *(container.envFrom or []),
            EnvFromSource(secretRef=NameRef(name=secret.name)),
        ]


def _mount_claim(pod: PodSpec, container: Container, claim: str) -> None:
    """A pvc:// source: the claim mounted read-only under PVC_MOUNT_ROOT, as KServe's storage
    initializer mounts it (the program finds it there through WONDERLAND_PVC_ROOT)."""
    if not claim:
        return  # the initializer says what a pvc:// URI must look like
    name = f"storage-{claim}"[:63].rstrip("-")
    pod.volumes = upsert_volume(
        pod.volumes,
        Volume(
            name=name,
            persistentVolumeClaim=PersistentVolumeClaimVolumeSource(claimName=claim, readOnly=True),
        ),
    )
    upsert_volume_mount(
        container, VolumeMount(name=name, mountPath=f"{PVC_MOUNT_ROOT}/{claim}", readOnly=True)
    )
    upsert_env(container, EnvVar(name="WONDERLAND_PVC_ROOT", value=PVC_MOUNT_ROOT))
