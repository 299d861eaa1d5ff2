"""What the API server and Kubeflow Trainer's webhooks check on TrainJobs and runtimes.

The CRDs' defaults and CEL rules (immutable fields, ``managedBy`` values, ``storageUri``
form, ``numProcPerNode >= 1``), the TrainJob webhook (the runtime must exist; a runtime
without initializer jobs takes no initializer; reserved environment variables; what
``runtimePatches`` may touch and when) and the runtime webhooks (the ancestor jobs run one
replica and hold the required container), with upstream's messages.
"""

from __future__ import annotations

import re
from typing import Any

from wonderland.api.admission import Admission, ObjectReader
from wonderland.api.schemas.trainer import TrainingRuntimeObject, TrainJobObject
from wonderland.errors import InvalidError, NotFoundError
from wonderland.training import frameworks
from wonderland.training.runtime_info import (
    ANCESTOR_LABEL,
    DATASET_INITIALIZER,
    LAUNCHER,
    MODEL_INITIALIZER,
    NODE,
    TRAINER,
    new_runtime_info,
)
from wonderland.training.trainjobs import (
    CLUSTER_RUNTIMES,
    CONTROLLER,
    GROUP,
    JOBSETS,
    RUNTIMES,
    TRAINJOBS,
    runtime_group_kind,
)

__all__ = ["check_trainjob", "default_trainjob", "install"]

Obj = dict[str, Any]

_RFC1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://.+$")
_DOMAIN_PREFIXED = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9/._~%!$&'()*+,;=:@-]+$"
)
MANAGERS = (CONTROLLER, "kueue.x-k8s.io/multikueue")
INITIALIZER_VOLUME = "initializer"
EXPECTED_CONTAINER = {
    TRAINER: NODE,
    MODEL_INITIALIZER: MODEL_INITIALIZER,
    DATASET_INITIALIZER: DATASET_INITIALIZER,
}


def install(admission: Admission) -> None:
    """Register the TrainJob and runtime defaults and checks into ``admission``."""
    admission.register_default(TRAINJOBS, default_trainjob)
    admission.register(TRAINJOBS, check_trainjob)
    admission.register_lookup(TRAINJOBS, _check_against_runtime)
    admission.register(RUNTIMES, _check_runtime)
    admission.register(CLUSTER_RUNTIMES, _check_runtime)


# -- the CRD: defaults and CEL rules ------------------------------------------------------


def default_trainjob(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    ref = spec.get("runtimeRef")
    if isinstance(ref, dict):
        ref.setdefault("apiGroup", GROUP)
        ref.setdefault("kind", "ClusterTrainingRuntime")
    spec.setdefault("suspend", False)
    spec.setdefault("managedBy", CONTROLLER)


def check_trainjob(new: Obj, old: Obj | None) -> None:
    name = str((new.get("metadata") or {}).get("name") or "")
    if name and (len(name) > 63 or not _RFC1035.match(name)):
        raise InvalidError(
            "metadata.name",
            f'Invalid value: "{name}": a lowercase RFC 1035 label must consist of lower case '
            "alphanumeric characters or '-', start with an alphabetic character, and end "
            "with an alphanumeric character, and be no more than 63 characters",
        )
    job = TrainJobObject.model_validate(new)
    spec = job.spec
    if spec.managedBy is not None and spec.managedBy not in MANAGERS:
        raise InvalidError(
            "spec.managedBy",
            "Invalid value: ManagedBy must be trainer.kubeflow.org/trainjob-controller or "
            "kueue.x-k8s.io/multikueue if set",
        )
    procs = spec.trainer.numProcPerNode if spec.trainer is not None else None
    if procs is not None and procs < 1:
        raise InvalidError(
            "spec.trainer.numProcPerNode",
            "Invalid value: numProcPerNode must be greater than or equal to 1",
        )
    for which in ("dataset", "model"):
        source = getattr(spec.initializer, which) if spec.initializer else None
        uri = source.storageUri if source is not None else None
        if uri and not _URI.match(uri):
            raise InvalidError(
                f"spec.initializer.{which}.storageUri",
                "Invalid value: storageUri may be empty, or it must be a valid URI (scheme://...)",
            )
    for i, patch in enumerate(spec.runtimePatches or []):
        if not _DOMAIN_PREFIXED.match(patch.manager):
            raise InvalidError(
                f"spec.runtimePatches[{i}].manager",
                f'Invalid value: "{patch.manager}": must be a domain-prefixed path (such as '
                '"acme.io/foo")',
            )
    managers = [p.manager for p in spec.runtimePatches or []]
    if len(managers) != len(set(managers)):
        raise InvalidError("spec.runtimePatches", "Duplicate value: manager must be unique")
    if old is None:
        return
    before = old.get("spec") or {}
    after = new.get("spec") or {}
    for field in ("runtimeRef", "initializer", "trainer", "activeDeadlineSeconds", "managedBy"):
        if _normal(field, before.get(field)) != _normal(field, after.get(field)):
            raise InvalidError(f"spec.{field}", "Invalid value: field is immutable")
    old_patches = {p.get("manager"): p for p in before.get("runtimePatches") or []}
    changed = [
        patch
        for patch in after.get("runtimePatches") or []
        if _without_time(old_patches.get(patch.get("manager")) or patch) != _without_time(patch)
        or patch.get("manager") not in old_patches
    ]
    removed = set(old_patches) - {p.get("manager") for p in after.get("runtimePatches") or []}
    if (changed or removed) and not (before.get("suspend") or after.get("suspend")):
        raise InvalidError(
            "spec.runtimePatches",
            "Forbidden: RuntimePatches can only be modified when the TrainJob is "
            "suspended before or after the update",
        )


def _normal(field: str, value: Any) -> Any:
    if field == "runtimeRef" and isinstance(value, dict):
        return {"apiGroup": GROUP, "kind": "ClusterTrainingRuntime", **value}
    if field == "managedBy" and value is None:
        return CONTROLLER
    return value


def _without_time(patch: Obj) -> Obj:
    return {k: v for k, v in patch.items() if k != "time"}


# -- the TrainJob webhook ---------------------------------------------------------------------


def _check_against_runtime(new: Obj, old: Obj | None, reader: ObjectReader) -> None:
    job = TrainJobObject.model_validate(new)
    group_kind = runtime_group_kind(job)
    ref = job.spec.runtimeRef
    if group_kind == f"ClusterTrainingRuntime.{GROUP}":
        resource, ns, what = CLUSTER_RUNTIMES, None, "clusterTrainingRuntime"
    elif group_kind == f"TrainingRuntime.{GROUP}":
        resource, ns, what = (
            RUNTIMES,
            str((new.get("metadata") or {}).get("namespace") or "default"),
            "trainingRuntime",
        )
    else:
        raise InvalidError("spec.runtimeRef", f"unsupported runtime: {group_kind}")
    try:
        runtime_obj = reader.get(resource, ns, ref.name)
    except NotFoundError as exc:
        raise InvalidError(
            "spec.runtimeRef",
            f"Invalid value: {exc}: specified {what} must be created before the TrainJob is created",
        ) from None
    runtime = TrainingRuntimeObject.model_validate(runtime_obj)
    info = new_runtime_info(job, runtime)
    containers: dict[str, set[str]] = {
        ps.name: {c.name or "" for c in ps.containers()} for ps in info.pod_sets
    }
    initializer = job.spec.initializer
    for which, job_name, config in (
        ("dataset", DATASET_INITIALIZER, "datasetConfig"),
        ("model", MODEL_INITIALIZER, "modelConfig"),
    ):
        if initializer is None or getattr(initializer, which) is None:
            continue
        names = containers.get(job_name)
        if names is None:
            raise InvalidError(
                "spec.runtimeRef",
                f"Invalid value: must have {job_name} job when trainJob is configured with input {config}",
            )
        if job_name not in names:
            raise InvalidError(
                "spec.runtimeRef",
                f"Invalid value: must have container with name - {job_name} in the {job_name} job",
            )
        ps = info.by_name(job_name)
        container = ps.container(job_name) if ps is not None else None
        mounts = {m.name for m in (container.volumeMounts if container else None) or []}
        if INITIALIZER_VOLUME not in mounts:
            raise InvalidError(
                "spec.runtimeRef",
                f"Invalid value: must have volumeMount with name - {INITIALIZER_VOLUME} in "
                f"container {job_name} of the {job_name} job",
            )
    policy = runtime.spec.mlPolicy
    env_names = [e.name for e in (job.spec.trainer.env if job.spec.trainer else None) or []]
    if policy is not None and policy.torch is not None:
        reserved = sorted(set(env_names) & frameworks.TORCH_RESERVED_ENV)
        if reserved:
            raise InvalidError(
                "spec.trainer.env",
                f"Invalid value: must not have reserved envs, invalid envs configured: [{' '.join(reserved)}]",
            )
        injection = policy.torch.envInjection
        for target in (injection.targets if injection else None) or []:
            ps = info.by_name(target.jobName or "")
            for cname in target.containerNames or []:
                if ps is None or ps.container(cname) is None:
                    raise InvalidError(
                        "spec.runtimeRef",
                        f'Invalid value: envInjection target podSet "{target.jobName}" container '
                        f'"{cname}" not found in runtime template',
                    )
    if policy is not None and policy.mpi is not None:
        reserved = sorted(set(env_names) & frameworks.MPI_RESERVED_ENV)
        if reserved:
            raise InvalidError(
                "spec.trainer.env",
                f"Invalid value: must not have reserved envs, invalid envs configured: [{' '.join(reserved)}]",
            )
        nodes = job.spec.trainer.numNodes if job.spec.trainer else None
        if (
            (nodes or 1) >= 2
            and policy.mpi.runLauncherAsNode
            and (info.by_name(LAUNCHER) is None or info.by_name(NODE) is None)
        ):
            raise InvalidError(
                "spec.trainer.numNodes",
                "Invalid value: must have 1 when MPI trainingRuntime with enabled "
                "runLauncherAsNode does not have either launcher and node",
            )
    if policy is not None and policy.xgboost is not None:
        for i, name in enumerate(env_names):
            if name in frameworks.XGBOOST_RESERVED_ENV:
                raise InvalidError(
                    f"spec.trainer.env[{i}]",
                    f"Forbidden: {name} is reserved for the XGBoost runtime",
                )
    _check_patches(job, containers)
    if old is not None and old.get("spec", {}).get("runtimePatches") != new.get("spec", {}).get(
        "runtimePatches"
    ):
        meta = new.get("metadata") or {}
        try:
            jobset = reader.get(
                JOBSETS, str(meta.get("namespace") or "default"), str(meta.get("name"))
            )
        except NotFoundError:
            return
        for rjob in (jobset.get("status") or {}).get("replicatedJobsStatus") or []:
            if int(rjob.get("active", 0)) > 0:
                raise InvalidError(
                    "spec.runtimePatches",
                    f"Forbidden: RuntimePatches cannot be modified when the JobSet's "
                    f"ReplicatedJob {rjob.get('name')} is still active",
                )


def _check_patches(job: TrainJobObject, containers: dict[str, set[str]]) -> None:
    for patch in job.spec.runtimePatches or []:
        spec = patch.trainingRuntimeSpec
        if spec is None or spec.template is None or spec.template.spec is None:
            continue
        for rjob in spec.template.spec.replicatedJobs or []:
            names = containers.get(rjob.name)
            if names is None:
                raise InvalidError(
                    "spec.runtimePatches",
                    "Invalid value: must not have replicated job that doesn't exist in the "
                    "runtime job template",
                )
            pod = (
                rjob.template.spec.template.spec
                if rjob.template and rjob.template.spec and rjob.template.spec.template
                else None
            )
            if pod is None:
                continue
            for c in pod.initContainers or []:
                if c.name not in names:
                    raise InvalidError(
                        "spec.runtimePatches",
                        f"Invalid value: must not have initContainer that doesn't exist in the runtime job {rjob.name}",
                    )
            for c in pod.containers or []:
                if c.name not in names:
                    raise InvalidError(
                        "spec.runtimePatches",
                        f"Invalid value: must not have container that doesn't exist in the runtime job {rjob.name}",
                    )
                if c.env and c.name in (DATASET_INITIALIZER, MODEL_INITIALIZER, NODE):
                    raise InvalidError(
                        "spec.runtimePatches",
                        f"Invalid value: must not have envs for the {DATASET_INITIALIZER}, "
                        f"{MODEL_INITIALIZER}, {NODE} containers",
                    )


# -- the runtime webhooks ---------------------------------------------------------------------


def _check_runtime(new: Obj, old: Obj | None) -> None:
    runtime = TrainingRuntimeObject.model_validate(new)
    policy = runtime.spec.mlPolicy
    if policy is not None and len(policy.sources()) > 1:
        raise InvalidError(
            "spec.mlPolicy", "Invalid value: Only one of the policy can be configured"
        )
    if policy is not None and policy.mpi is not None and (policy.mpi.numProcPerNode or 1) < 1:
        raise InvalidError(
            "spec.mlPolicy.mpi.numProcPerNode",
            "Invalid value: NumProcPerNode in mpiPolicy must be >= 1",
        )
    path = "spec.template.spec.replicatedJobs"
    for i, rjob in enumerate(runtime.spec.template.spec.replicatedJobs or []):
        labels = (rjob.template.metadata.labels if rjob.template.metadata else None) or {}
        ancestor = labels.get(ANCESTOR_LABEL)
        if ancestor not in EXPECTED_CONTAINER:
            continue
        if (rjob.replicas if rjob.replicas is not None else 1) != 1:
            raise InvalidError(
                f"{path}[{i}].replicas", f"Invalid value: {rjob.replicas}: always must be 1"
            )
        names = {c.name for c in rjob.template.spec.template.spec.containers}
        if EXPECTED_CONTAINER[ancestor] not in names:
            raise InvalidError(
                f"{path}[{i}].template.spec.template.spec.containers",
                f"Invalid value: must contain the required container for the ancestor: {ancestor}",
            )
