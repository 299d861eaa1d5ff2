"""trainer.kubeflow.org/v1alpha1 OptimizationJob, as on Kubeflow Trainer's main branch
(``pkg/apis/trainer/v1alpha1/optimizationjob_types.go``, PR #3552; in no release yet).

The models give types and shape; the CRD's bounds, enums and CEL rules are checked with the
API server's messages by :mod:`wonderland.training.optimization_admission`, which also fills
the CRD's defaults (Minimize, random search, one trial at a time, Float).
"""

from __future__ import annotations

from wonderland.api.schemas._base import Schema, StringMap
from wonderland.api.schemas.core import TopLevel
from wonderland.api.schemas.trainer import TrainJobSpec

__all__ = [
    "CategoricalSpace",
    "Condition",
    "GridAlgorithm",
    "LogUniformSpace",
    "Objective",
    "OptimizationJobObject",
    "OptimizationJobSpec",
    "OptimizationJobStatus",
    "OptimizationResult",
    "Parameter",
    "ParameterAssignment",
    "RandomAlgorithm",
    "SearchAlgorithm",
    "SearchSpace",
    "TrainJobTemplateMetadata",
    "TrainJobTemplateSpec",
    "UniformSpace",
]


class Objective(Schema):
    """``metric`` (1-64 characters) to optimize in ``direction`` Maximize | Minimize."""

    metric: str
    direction: str | None = None


class RandomAlgorithm(Schema):
    seed: int | None = None


class GridAlgorithm(Schema):
    pass


class SearchAlgorithm(Schema):
    """Exactly one of ``random`` (the default) and ``grid``."""

    random: RandomAlgorithm | None = None
    grid: GridAlgorithm | None = None


class UniformSpace(Schema):
    """A uniform distribution over [min, max]; bounds are decimal strings, ``type`` Int | Float."""

    min: str
    max: str
    type: str | None = None


class LogUniformSpace(Schema):
    """A log-uniform distribution over [min, max], min > 0."""

    min: str
    max: str
    type: str | None = None


class CategoricalSpace(Schema):
    """1-100 distinct strings of at most 64 characters."""

    choices: list[str]


class SearchSpace(Schema):
    """Exactly one of ``uniform``, ``logUniform`` and ``categorical``."""

    uniform: UniformSpace | None = None
    logUniform: LogUniformSpace | None = None
    categorical: CategoricalSpace | None = None


class Parameter(Schema):
    name: str
    searchSpace: SearchSpace


class TrainJobTemplateMetadata(Schema):
    """The CRD keeps these fields of a template's ObjectMeta; name and namespace are refused."""

    name: str | None = None
    namespace: str | None = None
    labels: StringMap | None = None
    annotations: StringMap | None = None
    finalizers: list[str] | None = None


class TrainJobTemplateSpec(Schema):
    metadata: TrainJobTemplateMetadata | None = None
    spec: TrainJobSpec


class OptimizationJobSpec(Schema):
    """Immutable as a whole. ``objectives``: exactly one; ``parameters``: 1-100;
    ``numTrials`` and ``parallelTrials``: 1-100, parallel at most numTrials."""

    objectives: list[Objective]
    searchAlgorithm: SearchAlgorithm | None = None
    parameters: list[Parameter]
    numTrials: int | None = None
    parallelTrials: int | None = None
    trainJobTemplate: TrainJobTemplateSpec


class ParameterAssignment(Schema):
    name: str
    value: str


class OptimizationResult(Schema):
    """The best trial: its TrainJob and the parameters it ran with."""

    trainJobName: str
    parameters: list[ParameterAssignment] | None = None


class Condition(Schema):
    """A ``metav1.Condition`` (``Created``, ``Complete``, ``Failed``)."""

    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: int | None = None


class OptimizationJobStatus(Schema):
    conditions: list[Condition] | None = None
    result: OptimizationResult | None = None


class OptimizationJobObject(TopLevel):
    spec: OptimizationJobSpec
