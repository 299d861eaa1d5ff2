"""jobset.x-k8s.io/v1alpha2: JobSet, as ``api/jobset/v1alpha2/jobset_types.go`` of
kubernetes-sigs/jobset v0.12 defines it (the Job template is batch/v1's)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from wonderland.api.schemas._base import Schema
from wonderland.api.schemas.batch import JobTemplateSpec
from wonderland.api.schemas.core import (
    ObjectMetaTemplate,
    PersistentVolumeClaimSpec,
    TopLevel,
)

__all__ = [
    "Coordinator",
    "DependsOn",
    "FailurePolicy",
    "FailurePolicyRule",
    "JobSetObject",
    "JobSetSpec",
    "Network",
    "ReplicatedJob",
    "StartupPolicy",
    "SuccessPolicy",
    "VolumeClaimPolicy",
    "VolumeClaimTemplate",
    "VolumeRetentionPolicy",
]

FailurePolicyAction = Literal[
    "FailJobSet",
    "RestartJobSet",
    "RestartJobSetAndIgnoreMaxRestarts",
    "RestartJob",
    "RestartJobAndIgnoreMaxRestarts",
]


class DependsOn(Schema):
    """A replicated job this one waits for: until all its Jobs are Ready or Complete."""

    name: str
    status: Literal["Ready", "Complete"]


class ReplicatedJob(Schema):
    """``replicas`` Jobs named ``<jobset>-<name>-<index>`` from one Job template."""

    name: str
    template: JobTemplateSpec
    groupName: str | None = None
    replicas: int | None = None
    dependsOn: list[DependsOn] | None = None


class Network(Schema):
    enableDNSHostnames: bool | None = None
    subdomain: str | None = None
    publishNotReadyAddresses: bool | None = None


class SuccessPolicy(Schema):
    operator: Literal["All", "Any"]
    targetReplicatedJobs: list[str] | None = None


class FailurePolicyRule(Schema):
    name: str | None = None
    action: FailurePolicyAction
    onJobFailureReasons: list[str] | None = None
    onJobFailureMessagePatterns: list[str] | None = None
    targetReplicatedJobs: list[str] | None = None


class FailurePolicy(Schema):
    maxRestarts: int | None = None
    restartStrategy: Literal["Recreate", "BlockingRecreate", "InPlaceRestart"] | None = None
    rules: list[FailurePolicyRule] | None = None


class StartupPolicy(Schema):
    startupPolicyOrder: Literal["AnyOrder", "InOrder"]


class Coordinator(Schema):
    replicatedJob: str
    jobIndex: int | None = None
    podIndex: int | None = None


class VolumeClaimTemplate(Schema):
    """A PersistentVolumeClaim the JobSet creates as ``<metadata.name>-<jobset>``."""

    apiVersion: str | None = None
    kind: str | None = None
    metadata: ObjectMetaTemplate | None = None
    spec: PersistentVolumeClaimSpec


class VolumeRetentionPolicy(Schema):
    whenDeleted: Literal["Delete", "Retain"] | None = None


class VolumeClaimPolicy(Schema):
    templates: list[VolumeClaimTemplate] | None = None
    retentionPolicy: VolumeRetentionPolicy | None = None


class JobSetSpec(Schema):
    replicatedJobs: list[ReplicatedJob] | None = None
    network: Network | None = None
    successPolicy: SuccessPolicy | None = None
    failurePolicy: FailurePolicy | None = None
    startupPolicy: StartupPolicy | None = None
    suspend: bool | None = None
    coordinator: Coordinator | None = None
    managedBy: str | None = None
    ttlSecondsAfterFinished: int | None = None
    volumeClaimPolicies: list[VolumeClaimPolicy] | None = None


class JobSetObject(TopLevel):
    spec: JobSetSpec = Field(default_factory=JobSetSpec)
