"""batch/v1: Job and CronJob."""

from __future__ import annotations

from typing import Literal

from wonderland.api.schemas._base import Schema
from wonderland.api.schemas.core import (
    LabelSelector,
    ObjectMetaTemplate,
    PodTemplateSpec,
    TopLevel,
)

__all__ = ["CronJobObject", "JobObject", "JobSpec", "JobTemplateSpec"]


class PodFailurePolicyOnExitCodesRequirement(Schema):
    containerName: str | None = None
    operator: Literal["In", "NotIn"]
    values: list[int]


class PodFailurePolicyOnPodConditionsPattern(Schema):
    type: str
    status: Literal["True", "False", "Unknown"] | None = None


class PodFailurePolicyRule(Schema):
    action: Literal["FailJob", "FailIndex", "Ignore", "Count"]
    onExitCodes: PodFailurePolicyOnExitCodesRequirement | None = None
    onPodConditions: list[PodFailurePolicyOnPodConditionsPattern] | None = None


class PodFailurePolicy(Schema):
    rules: list[PodFailurePolicyRule]


class SuccessPolicyRule(Schema):
    succeededIndexes: str | None = None
    succeededCount: int | None = None


class SuccessPolicy(Schema):
    rules: list[SuccessPolicyRule]


class JobSpec(Schema):
    template: PodTemplateSpec
    parallelism: int | None = None
    completions: int | None = None
    completionMode: Literal["NonIndexed", "Indexed"] | None = None
    activeDeadlineSeconds: int | None = None
    backoffLimit: int | None = None
    backoffLimitPerIndex: int | None = None
    maxFailedIndexes: int | None = None
    podFailurePolicy: PodFailurePolicy | None = None
    successPolicy: SuccessPolicy | None = None
    selector: LabelSelector | None = None
    manualSelector: bool | None = None
    ttlSecondsAfterFinished: int | None = None
    suspend: bool | None = None
    podReplacementPolicy: Literal["TerminatingOrFailed", "Failed"] | None = None
    managedBy: str | None = None


class JobObject(TopLevel):
    spec: JobSpec


class JobTemplateSpec(Schema):
    metadata: ObjectMetaTemplate | None = None
    spec: JobSpec


class CronJobSpec(Schema):
    schedule: str
    jobTemplate: JobTemplateSpec
    timeZone: str | None = None
    startingDeadlineSeconds: int | None = None
    concurrencyPolicy: Literal["Allow", "Forbid", "Replace"] | None = None
    suspend: bool | None = None
    successfulJobsHistoryLimit: int | None = None
    failedJobsHistoryLimit: int | None = None


class CronJobObject(TopLevel):
    spec: CronJobSpec
