"""kubeflow.org/v1beta1: Katib's Experiment, Trial and Suggestion, as Katib v0.19 defines
them (``pkg/apis/controller/{common,experiments,trials,suggestions}/v1beta1``).

Upstream's CRDs preserve unknown fields; these models follow the Go types instead, so a
misspelt field is refused at apply rather than ignored. ``trialSpec`` and ``runSpec`` are
unstructured on the cluster too (any Kubernetes object); the Trial controller checks them
against the kind they name when it creates the run.
"""

from __future__ import annotations

import builtins
from typing import Literal

from pydantic import Field

from wonderland.api.schemas._base import AnyMap, Schema, StringMap
from wonderland.api.schemas.core import Container, TopLevel

__all__ = [
    "AlgorithmSetting",
    "AlgorithmSpec",
    "CollectorSpec",
    "ConfigMapSource",
    "EarlyStoppingRule",
    "EarlyStoppingSpec",
    "ExperimentObject",
    "ExperimentSpec",
    "FeasibleSpace",
    "FileSystemPath",
    "FilterSpec",
    "Metric",
    "MetricStrategy",
    "MetricsCollectorSpec",
    "ObjectiveSpec",
    "Observation",
    "ParameterAssignment",
    "ParameterSpec",
    "SourceSpec",
    "SuggestionObject",
    "SuggestionSpec",
    "TrialAssignment",
    "TrialObject",
    "TrialParameterSpec",
    "TrialSpec",
    "TrialTemplate",
]

# -- common ---------------------------------------------------------------------------


class AlgorithmSetting(Schema):
    name: str = ""
    value: str = ""


class AlgorithmSpec(Schema):
    algorithmName: str = ""
    algorithmSettings: list[AlgorithmSetting] | None = None


class EarlyStoppingSpec(Schema):
    algorithmName: str = ""
    algorithmSettings: list[AlgorithmSetting] | None = None


class EarlyStoppingRule(Schema):
    name: str = ""
    value: str = ""
    comparison: Literal["equal", "less", "greater", ""] = ""
    startStep: int = 0


class MetricStrategy(Schema):
    name: str = ""
    value: Literal["min", "max", "latest", ""] = ""


class ObjectiveSpec(Schema):
    type: str = ""
    goal: float | None = None
    objectiveMetricName: str = ""
    additionalMetricNames: list[str] | None = None
    metricStrategies: list[MetricStrategy] | None = None

    def metric_names(self) -> list[str]:
        """The objective metric first, then the additional ones (Katib's collector order)."""
        return [self.objectiveMetricName, *(self.additionalMetricNames or [])]

    def strategy(self, name: str) -> str:
        for strategy in self.metricStrategies or []:
            if strategy.name == name:
                return strategy.value
        return ""


class ParameterAssignment(Schema):
    name: str = ""
    value: str = ""


class Metric(Schema):
    name: str = ""
    min: str = ""
    max: str = ""
    latest: str = ""


class Observation(Schema):
    metrics: list[Metric] | None = None


class FileSystemPath(Schema):
    path: str = ""
    kind: Literal["Directory", "File", ""] = ""
    format: str = ""


class FilterSpec(Schema):
    metricsFormat: list[str] | None = None


class HTTPGetAction(Schema):
    path: str | None = None
    port: int | str | None = None
    host: str | None = None
    scheme: str | None = None
    httpHeaders: list[AnyMap] | None = None


class SourceSpec(Schema):
    httpGet: HTTPGetAction | None = None
    fileSystemPath: FileSystemPath | None = None
    filter: FilterSpec | None = None


class CollectorSpec(Schema):
    kind: str = ""
    customCollector: Container | None = None


class MetricsCollectorSpec(Schema):
    source: SourceSpec | None = None
    collector: CollectorSpec | None = None

    def kind(self) -> str:
        return self.collector.kind if self.collector is not None and self.collector.kind else ""


# -- Experiment ---------------------------------------------------------------------------


class FeasibleSpace(Schema):
    max: str = ""
    min: str = ""
    list: builtins.list[str] | None = None
    step: str = ""
    distribution: str = ""


class ParameterSpec(Schema):
    name: str = ""
    parameterType: str = ""
    feasibleSpace: FeasibleSpace = Field(default_factory=FeasibleSpace)


class ConfigMapSource(Schema):
    configMapName: str = ""
    configMapNamespace: str = ""
    templatePath: str = ""


class TrialParameterSpec(Schema):
    name: str = ""
    description: str = ""
    reference: str = ""


class TrialTemplate(Schema):
    retain: bool = False
    trialSpec: AnyMap | None = None
    configMap: ConfigMapSource | None = None
    trialParameters: list[TrialParameterSpec] | None = None
    primaryPodLabels: StringMap | None = None
    primaryContainerName: str = ""
    successCondition: str = ""
    failureCondition: str = ""


class NasConfig(Schema):
    graphConfig: AnyMap | None = None
    operations: list[AnyMap] | None = None


class ExperimentSpec(Schema):
    parameters: list[ParameterSpec] | None = None
    objective: ObjectiveSpec | None = None
    algorithm: AlgorithmSpec | None = None
    earlyStopping: EarlyStoppingSpec | None = None
    trialTemplate: TrialTemplate | None = None
    parallelTrialCount: int | None = None
    maxTrialCount: int | None = None
    maxFailedTrialCount: int | None = None
    metricsCollectorSpec: MetricsCollectorSpec | None = None
    nasConfig: NasConfig | None = None
    resumePolicy: str = ""


class ExperimentObject(TopLevel):
    spec: ExperimentSpec = Field(default_factory=ExperimentSpec)


# -- Trial ----------------------------------------------------------------------------------


class TrialSpec(Schema):
    objective: ObjectiveSpec | None = None
    parameterAssignments: list[ParameterAssignment] | None = None
    earlyStoppingRules: list[EarlyStoppingRule] | None = None
    runSpec: AnyMap | None = None
    retainRun: bool = False
    metricsCollector: MetricsCollectorSpec = Field(default_factory=MetricsCollectorSpec)
    primaryPodLabels: StringMap | None = None
    primaryContainerName: str = ""
    successCondition: str = ""
    failureCondition: str = ""
    labels: StringMap | None = None


class TrialObject(TopLevel):
    spec: TrialSpec = Field(default_factory=TrialSpec)


# -- Suggestion -------------------------------------------------------------------------------


class SuggestionSpec(Schema):
    algorithm: AlgorithmSpec | None = None
    earlyStopping: EarlyStoppingSpec | None = None
    requests: int = 0
    resumePolicy: str = ""


class TrialAssignment(Schema):
    parameterAssignments: list[ParameterAssignment] | None = None
    name: str = ""
    earlyStoppingRules: list[EarlyStoppingRule] | None = None
    labels: StringMap | None = None


class SuggestionObject(TopLevel):
    spec: SuggestionSpec = Field(default_factory=SuggestionSpec)
