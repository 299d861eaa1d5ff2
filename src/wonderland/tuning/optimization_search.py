"""An OptimizationJob's search space and algorithm as Katib's, so that it runs on the same
Optuna studies as Experiments (:mod:`.studies`, :mod:`.algorithms`).

Upstream's controller (KEP-3562 §7.2, PR #3828) does the same: it maps the OptimizationJob
onto Katib's ``api.v1.beta1`` Experiment messages and asks Katib's Optuna suggestion
service. The mapping:

==============================  ==========================================================
OptimizationJob                 Katib Experiment
==============================  ==========================================================
objectives[0] metric/direction  objective objectiveMetricName / type minimize|maximize
searchAlgorithm.random{seed}    algorithm random, setting ``random_state`` = seed
searchAlgorithm.grid            algorithm grid
uniform{min,max,type Float}     parameterType double, feasibleSpace min/max
uniform{min,max,type Int}       parameterType int, min rounded up, max rounded down
logUniform{...}                 as uniform, feasibleSpace.distribution logUniform
categorical{choices}            parameterType categorical, feasibleSpace.list
numTrials / parallelTrials      maxTrialCount / parallelTrialCount
==============================  ==========================================================
"""

from __future__ import annotations

import math
from decimal import Decimal

from wonderland.api.schemas.katib import (
    AlgorithmSetting,
    AlgorithmSpec,
    ExperimentSpec,
    FeasibleSpace,
    ObjectiveSpec,
    ParameterSpec,
)
from wonderland.api.schemas.optimization import (
    LogUniformSpace,
    OptimizationJobSpec,
    Parameter,
    UniformSpace,
)
from wonderland.errors import WonderlandError

__all__ = ["SearchSpaceError", "experiment_spec", "is_grid"]


class SearchSpaceError(WonderlandError):
    """A parameter's search space holds no value the algorithm can suggest."""


def is_grid(spec: OptimizationJobSpec) -> bool:
    return spec.searchAlgorithm is not None and spec.searchAlgorithm.grid is not None


def experiment_spec(spec: OptimizationJobSpec) -> ExperimentSpec:
    """The Katib ExperimentSpec whose study suggests for ``spec`` (see the module table)."""
    objective = spec.objectives[0]
    settings: list[AlgorithmSetting] = []
    if is_grid(spec):
        algorithm = AlgorithmSpec(algorithmName="grid")
    else:
        random = spec.searchAlgorithm.random if spec.searchAlgorithm is not None else None
        if random is not None and random.seed is not None:
            settings.append(AlgorithmSetting(name="random_state", value=str(random.seed)))
        algorithm = AlgorithmSpec(algorithmName="random", algorithmSettings=settings or None)
    return ExperimentSpec(
        objective=ObjectiveSpec(
            type="maximize" if objective.direction == "Maximize" else "minimize",
            objectiveMetricName=objective.metric,
        ),
        algorithm=algorithm,
        parameters=[_parameter(i, p) for i, p in enumerate(spec.parameters)],
        maxTrialCount=spec.numTrials if spec.numTrials is not None else 1,
        parallelTrialCount=spec.parallelTrials if spec.parallelTrials is not None else 1,
    )


def _parameter(index: int, parameter: Parameter) -> ParameterSpec:
    space = parameter.searchSpace
    if space.categorical is not None:
        return ParameterSpec(
            name=parameter.name,
            parameterType="categorical",
            feasibleSpace=FeasibleSpace(list=list(space.categorical.choices)),
        )
    bounded: UniformSpace | LogUniformSpace | None = space.uniform or space.logUniform
    kind = "uniform" if space.uniform is not None else "logUniform"
    if bounded is None:
        raise SearchSpaceError(
            f"spec.parameters[{index}].searchSpace: set one of uniform, logUniform, categorical"
        )
    distribution = "logUniform" if kind == "logUniform" else ""
    if bounded.type == "Int":
        low, high = math.ceil(Decimal(bounded.min)), math.floor(Decimal(bounded.max))
        if low > high:
            raise SearchSpaceError(
                f"spec.parameters[{index}].searchSpace.{kind}: [{bounded.min}, {bounded.max}] "
                f"holds no integer for the Int parameter {parameter.name!r}; widen the range "
                "or use type Float"
            )
        feasible = FeasibleSpace(min=str(low), max=str(high), distribution=distribution)
        return ParameterSpec(name=parameter.name, parameterType="int", feasibleSpace=feasible)
    feasible = FeasibleSpace(
        min=repr(float(bounded.min)), max=repr(float(bounded.max)), distribution=distribution
    )
    return ParameterSpec(name=parameter.name, parameterType="double", feasibleSpace=feasible)
