"""trainer.kubeflow.org/v1alpha1: TrainJob, TrainingRuntime and ClusterTrainingRuntime, as
Kubeflow Trainer v2.3 defines them (``pkg/apis/trainer/v1alpha1``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from wonderland.api.schemas._base import AnyMap, Schema, StringMap
from wonderland.api.schemas.core import (
    Affinity,
    EnvVar,
    LocalObjectReference,
    ObjectMetaTemplate,
    PodSchedulingGate,
    PodSecurityContext,
    ResourceRequirements,
    SecurityContext,
    Toleration,
    TopLevel,
    Volume,
    VolumeMount,
)
from wonderland.api.schemas.jobset import JobSetSpec

__all__ = [
    "ContainerPatch",
    "DatasetInitializer",
    "Initializer",
    "JobSetTemplateSpec",
    "MLPolicy",
    "Metric",
    "ModelInitializer",
    "PatchMetadata",
    "PodSpecPatch",
    "RuntimePatch",
    "RuntimeRef",
    "TrainJobObject",
    "TrainJobSpec",
    "Trainer",
    "TrainerStatus",
    "TrainingRuntimeObject",
    "TrainingRuntimeSpec",
    "UpdateTrainJobStatusRequest",
]


# -- runtimes --------------------------------------------------------------------------


class EnvInjectionTarget(Schema):
    jobName: str | None = None
    containerNames: list[str] | None = None


class EnvInjection(Schema):
    targets: list[EnvInjectionTarget] | None = Field(default=None, max_length=16)


class TorchMLPolicySource(Schema):
    envInjection: EnvInjection | None = None


class MPIMLPolicySource(Schema):
    numProcPerNode: int | None = None
    mpiImplementation: Literal["OpenMPI", ""] | None = None
    sshAuthMountPath: str | None = None
    runLauncherAsNode: bool | None = None


class EmptyPolicySource(Schema):
    pass


class FluxMLPolicySource(Schema):
    numProcPerNode: int | None = None


class MLPolicy(Schema):
    numNodes: int | None = None
    torch: TorchMLPolicySource | None = None
    mpi: MPIMLPolicySource | None = None
    flux: FluxMLPolicySource | None = None
    jax: EmptyPolicySource | None = None
    xgboost: EmptyPolicySource | None = None

    def sources(self) -> list[str]:
        return [k for k in ("torch", "mpi", "flux", "jax", "xgboost") if getattr(self, k)]


class CoschedulingPodGroupPolicySource(Schema):
    scheduleTimeoutSeconds: int | None = None


class PodGroupPolicy(Schema):
    coscheduling: CoschedulingPodGroupPolicySource | None = None
    volcano: AnyMap | None = None


class JobSetTemplateSpec(Schema):
    metadata: ObjectMetaTemplate | None = None
    spec: JobSetSpec = Field(default_factory=lambda: JobSetSpec())


class TrainingRuntimeSpec(Schema):
    mlPolicy: MLPolicy | None = None
    podGroupPolicy: PodGroupPolicy | None = None
    template: JobSetTemplateSpec = Field(default_factory=JobSetTemplateSpec)


class TrainingRuntimeObject(TopLevel):
    """TrainingRuntime (namespaced) and ClusterTrainingRuntime (cluster-scoped)."""

    spec: TrainingRuntimeSpec = Field(default_factory=TrainingRuntimeSpec)


# -- TrainJob ---------------------------------------------------------------------------


class RuntimeRef(Schema):
    name: str = Field(min_length=1, max_length=253)
    apiGroup: str | None = Field(default=None, max_length=253)
    kind: str | None = Field(default=None, max_length=253)


class DatasetInitializer(Schema):
    storageUri: str | None = Field(default=None, max_length=2048)
    env: list[EnvVar] | None = Field(default=None, max_length=128)
    secretRef: LocalObjectReference | None = None


class ModelInitializer(Schema):
    storageUri: str | None = Field(default=None, max_length=2048)
    env: list[EnvVar] | None = Field(default=None, max_length=128)
    secretRef: LocalObjectReference | None = None


class Initializer(Schema):
    dataset: DatasetInitializer | None = None
    model: ModelInitializer | None = None


class Trainer(Schema):
    image: str | None = Field(default=None, max_length=500)
    command: list[str] | None = Field(default=None, max_length=128)
    args: list[str] | None = Field(default=None, max_length=128)
    env: list[EnvVar] | None = Field(default=None, max_length=128)
    numNodes: int | None = Field(default=None, ge=0)
    resourcesPerNode: ResourceRequirements | None = None
    numProcPerNode: int | None = None


class ContainerPatch(Schema):
    name: str = Field(min_length=1, max_length=253)
    env: list[EnvVar] | None = Field(default=None, max_length=128)
    volumeMounts: list[VolumeMount] | None = Field(default=None, max_length=128)
    securityContext: SecurityContext | None = None


class PodSpecPatch(Schema):
    serviceAccountName: str | None = Field(default=None, max_length=253)
    volumes: list[Volume] | None = Field(default=None, max_length=128)
    initContainers: list[ContainerPatch] | None = Field(default=None, max_length=64)
    containers: list[ContainerPatch] | None = Field(default=None, max_length=64)
    imagePullSecrets: list[LocalObjectReference] | None = Field(default=None, max_length=64)
    securityContext: PodSecurityContext | None = None
    nodeSelector: StringMap | None = None
    affinity: Affinity | None = None
    tolerations: list[Toleration] | None = Field(default=None, max_length=128)
    schedulingGates: list[PodSchedulingGate] | None = Field(default=None, max_length=16)
    terminationGracePeriodSeconds: int | None = Field(default=None, ge=0)


class PatchMetadata(Schema):
    """Only labels and annotations may be patched."""

    labels: StringMap | None = None
    annotations: StringMap | None = None


class PodTemplatePatch(Schema):
    metadata: PatchMetadata | None = None
    spec: PodSpecPatch | None = None


class JobSpecPatch(Schema):
    template: PodTemplatePatch | None = None


class JobTemplatePatch(Schema):
    metadata: PatchMetadata | None = None
    spec: JobSpecPatch | None = None


class ReplicatedJobPatch(Schema):
    name: str = Field(min_length=1, max_length=253)
    template: JobTemplatePatch | None = None


class JobSetSpecPatch(Schema):
    replicatedJobs: list[ReplicatedJobPatch] | None = Field(default=None, max_length=100)


class JobSetTemplatePatch(Schema):
    metadata: PatchMetadata | None = None
    spec: JobSetSpecPatch | None = None


class TrainingRuntimeSpecPatch(Schema):
    template: JobSetTemplatePatch | None = None


class RuntimePatch(Schema):
    manager: str = Field(min_length=1, max_length=253)
    time: str | None = None
    trainingRuntimeSpec: TrainingRuntimeSpecPatch | None = None


class TrainJobSpec(Schema):
    runtimeRef: RuntimeRef
    initializer: Initializer | None = None
    trainer: Trainer | None = None
    runtimePatches: list[RuntimePatch] | None = Field(default=None, max_length=16)
    suspend: bool | None = None
    activeDeadlineSeconds: int | None = Field(default=None, ge=1)
    managedBy: str | None = Field(default=None, max_length=253)


class Metric(Schema):
    name: str = Field(min_length=1, max_length=64)
    value: str = Field(min_length=1, max_length=64)


class TrainerStatus(Schema):
    progressPercentage: int | None = Field(default=None, ge=0, le=100)
    estimatedRemainingSeconds: int | None = Field(default=None, ge=0)
    metrics: list[Metric] | None = Field(default=None, max_length=256)
    lastUpdatedTime: str | None = None


class UpdateTrainJobStatusRequest(Schema):
    trainerStatus: TrainerStatus | None = None


class TrainJobObject(TopLevel):
    spec: TrainJobSpec
