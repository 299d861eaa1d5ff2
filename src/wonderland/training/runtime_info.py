"""What a TrainJob's runtime resolves to before its JobSet is built: upstream's
``runtime.Info`` (``pkg/runtime/runtime.go``, ``pkg/runtime/core/trainingruntime.go``).

The runtime's JobSet template is copied, the TrainJob's ``runtimePatches`` are merged into
it (strategic merge: replicated jobs, containers, volumes and env by name), the trainer's
``resourcesPerNode`` into the ``node`` container, and one :class:`PodSet` per replicated
job says how many pods it runs. The framework policies (:mod:`.frameworks`) then edit the
pod sets in place, and :mod:`.jobset_builder` turns the result into the JobSet.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from wonderland.api.schemas.core import (
    Container,
    ContainerPort,
    EnvVar,
    ObjectMetaTemplate,
    PodSpec,
    ResourceRequirements,
    Volume,
    VolumeMount,
)
from wonderland.api.schemas.jobset import ReplicatedJob
from wonderland.api.schemas.trainer import (
    ContainerPatch,
    JobSetTemplateSpec,
    MLPolicy,
    PatchMetadata,
    PodSpecPatch,
    RuntimePatch,
    TrainingRuntimeObject,
    TrainJobObject,
)

__all__ = [
    "ANCESTOR_LABEL",
    "DATASET_INITIALIZER",
    "LAUNCHER",
    "MODEL_INITIALIZER",
    "NODE",
    "TRAINER",
    "PodSet",
    "RuntimeInfo",
    "new_runtime_info",
    "upsert_env",
    "upsert_port",
    "upsert_volume",
    "upsert_volume_mount",
]

ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
TRAINER = "trainer"
DATASET_INITIALIZER = "dataset-initializer"
MODEL_INITIALIZER = "model-initializer"
NODE = "node"
LAUNCHER = "launcher"


@dataclass
class PodSet:
    """One replicated job of the runtime's template and how many pods it runs."""

    name: str
    ancestor: str | None
    count: int
    job: ReplicatedJob

    @property
    def pod_spec(self) -> PodSpec:
        return self.job.template.spec.template.spec

    def containers(self) -> Iterator[Container]:
        yield from self.pod_spec.containers
        yield from self.pod_spec.initContainers or []

    def container(self, name: str) -> Container | None:
        return next((c for c in self.containers() if c.name == name), None)


@dataclass
class RuntimeInfo:
    """A runtime resolved for one TrainJob; framework policies edit it in place."""

    kind: str
    name: str
    ml_policy: MLPolicy | None
    template: JobSetTemplateSpec
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    pod_sets: list[PodSet] = field(default_factory=list)

    def by_name(self, name: str) -> PodSet | None:
        return next((p for p in self.pod_sets if p.name == name), None)

    def by_ancestor(self, ancestor: str) -> PodSet | None:
        return next((p for p in self.pod_sets if p.ancestor == ancestor), None)

    def trainer_container(self) -> Container | None:
        """The ``node`` container of the trainer's replicated job."""
        trainer = self.by_ancestor(TRAINER)
        return trainer.container(NODE) if trainer is not None else None

    def resources_per_node(self, job: TrainJobObject) -> ResourceRequirements:
        """The TrainJob's ``resourcesPerNode``, else the runtime's ``node`` container's."""
        trainer = job.spec.trainer
        if trainer is not None and trainer.resourcesPerNode is not None:
            return trainer.resourcesPerNode
        for ps in self.pod_sets:
            if ps.name == NODE or ps.ancestor == TRAINER:
                node = next((c for c in ps.pod_spec.containers if c.name == NODE), None)
                if node is not None and node.resources is not None:
                    return node.resources
        return ResourceRequirements()


def new_runtime_info(job: TrainJobObject, runtime: TrainingRuntimeObject) -> RuntimeInfo:
    """The runtime's template with the TrainJob's patches and resources merged in."""
    template = runtime.spec.template.model_copy(deep=True)
    meta = template.metadata
    labels = dict((meta.labels if meta else None) or {})
    annotations = dict((meta.annotations if meta else None) or {})
    for patch in job.spec.runtimePatches or []:
        spec = patch.trainingRuntimeSpec
        if spec is not None and spec.template is not None and spec.template.metadata is not None:
            labels.update(spec.template.metadata.labels or {})
            annotations.update(spec.template.metadata.annotations or {})
        apply_runtime_patch(template, patch)
    policy = runtime.spec.mlPolicy.model_copy(deep=True) if runtime.spec.mlPolicy else None
    info = RuntimeInfo(
        kind=runtime.kind,
        name=str(runtime.metadata.get("name", "")),
        ml_policy=policy,
        template=template,
        labels=labels,
        annotations=annotations,
    )
    resources = job.spec.trainer.resourcesPerNode if job.spec.trainer else None
    launcher_as_node = bool(policy and policy.mpi and policy.mpi.runLauncherAsNode)
    for rjob in template.spec.replicatedJobs or []:
        count = rjob.template.spec.parallelism or 1
        job_meta = rjob.template.metadata
        ancestor = ((job_meta.labels if job_meta else None) or {}).get(ANCESTOR_LABEL)
        if ancestor == TRAINER and policy is not None:
            count = policy.numNodes or 1
        if resources is not None and (
            (ancestor == TRAINER and policy is not None) or (launcher_as_node and rjob.name == NODE)
        ):
            node = next(
                (c for c in rjob.template.spec.template.spec.containers if c.name == NODE), None
            )
            if node is not None:
                node.resources = merge_resources(node.resources, resources)
        info.pod_sets.append(PodSet(rjob.name, ancestor, max(count, 1), rjob))
    return info


def merge_resources(
    base: ResourceRequirements | None, override: ResourceRequirements
) -> ResourceRequirements:
    """Limits and requests merged key by key, the TrainJob's values winning."""
    if base is None:
        return override.model_copy(deep=True)
    limits = {**(base.limits or {}), **(override.limits or {})}
    requests = {**(base.requests or {}), **(override.requests or {})}
    merged = base.model_copy(deep=True)
    merged.limits = limits or None
    merged.requests = requests or None
    return merged


# -- runtimePatches: a strategic merge over the fields the patch API allows ------------------


def apply_runtime_patch(template: JobSetTemplateSpec, patch: RuntimePatch) -> None:
    spec_patch = patch.trainingRuntimeSpec
    if spec_patch is None or spec_patch.template is None or spec_patch.template.spec is None:
        return
    by_name = {r.name: r for r in template.spec.replicatedJobs or []}
    for rjob_patch in spec_patch.template.spec.replicatedJobs or []:
        rjob = by_name.get(rjob_patch.name)
        if rjob is None or rjob_patch.template is None:
            continue  # admission refuses a patch naming a job the runtime lacks
        job_template = rjob.template
        if rjob_patch.template.metadata is not None:
            job_template.metadata = _merge_meta(job_template.metadata, rjob_patch.template.metadata)
        job_spec_patch = rjob_patch.template.spec
        if job_spec_patch is None or job_spec_patch.template is None:
            continue
        pod_template = job_template.spec.template
        if job_spec_patch.template.metadata is not None:
            pod_template.metadata = _merge_meta(
                pod_template.metadata, job_spec_patch.template.metadata
            )
        if job_spec_patch.template.spec is not None:
            _patch_pod_spec(pod_template.spec, job_spec_patch.template.spec)


def _merge_meta(current: ObjectMetaTemplate | None, patch: PatchMetadata) -> ObjectMetaTemplate:
    merged = current.model_copy(deep=True) if current is not None else ObjectMetaTemplate()
    merged.labels = {**(merged.labels or {}), **(patch.labels or {})} or None
    merged.annotations = {**(merged.annotations or {}), **(patch.annotations or {})} or None
    return merged


def _patch_pod_spec(spec: PodSpec, patch: PodSpecPatch) -> None:
    if patch.serviceAccountName is not None:
        spec.serviceAccountName = patch.serviceAccountName
    for volume in patch.volumes or []:
        spec.volumes = upsert_volume(spec.volumes, volume)
    for group in ("initContainers", "containers"):
        patches: list[ContainerPatch] = getattr(patch, group) or []
        containers: list[Container] = list(getattr(spec, group) or [])
        for cpatch in patches:
            target = next((c for c in containers if c.name == cpatch.name), None)
            if target is None:
                target = Container(name=cpatch.name)
                containers.append(target)
            for env in cpatch.env or []:
                upsert_env(target, env)
            for mount in cpatch.volumeMounts or []:
                upsert_volume_mount(target, mount)
            if cpatch.securityContext is not None:
                target.securityContext = cpatch.securityContext
        if containers or getattr(spec, group) is not None:
            setattr(spec, group, containers)
    for secret in patch.imagePullSecrets or []:
        current = [s for s in spec.imagePullSecrets or [] if s.name != secret.name]
        spec.imagePullSecrets = [*current, secret]
    if patch.securityContext is not None:
        spec.securityContext = patch.securityContext
    if patch.nodeSelector:
        spec.nodeSelector = {**(spec.nodeSelector or {}), **patch.nodeSelector}
    if patch.affinity is not None:
        spec.affinity = patch.affinity
    if patch.tolerations is not None:
        spec.tolerations = [*(spec.tolerations or []), *patch.tolerations]
    if patch.schedulingGates is not None:
        names = {g.name for g in patch.schedulingGates}
        kept = [g for g in spec.schedulingGates or [] if g.name not in names]
        spec.schedulingGates = [*kept, *patch.schedulingGates]
    if patch.terminationGracePeriodSeconds is not None:
        spec.terminationGracePeriodSeconds = patch.terminationGracePeriodSeconds


# -- upserts (upstream's pkg/apply) ------------------------------------------------------------


def upsert_env(container: Container, *envs: EnvVar) -> None:
    """Set each variable: replace one of the same name in place, else append it."""
    current = list(container.env or [])
    for env in envs:
        index = next((i for i, e in enumerate(current) if e.name == env.name), None)
        if index is None:
            current.append(env)
        else:
            current[index] = env
    container.env = current


def upsert_port(container: Container, port: ContainerPort) -> None:
    ports = [p for p in container.ports or [] if p.containerPort != port.containerPort]
    container.ports = [*ports, port]


def upsert_volume_mount(container: Container, mount: VolumeMount) -> None:
    mounts = [m for m in container.volumeMounts or [] if m.mountPath != mount.mountPath]
    container.volumeMounts = [*mounts, mount]


def upsert_volume(volumes: list[Volume] | None, volume: Volume) -> list[Volume]:
    current = list(volumes or [])
    index = next((i for i, v in enumerate(current) if v.name == volume.name), None)
    if index is None:
        current.append(volume)
    else:
        current[index] = volume
    return current
