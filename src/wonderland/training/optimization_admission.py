"""What the API server checks on Trainer's OptimizationJob: the CRD's defaults, bounds and
CEL rules (``optimizationjob_types.go`` on Trainer's main branch), with its messages.

Upstream has no webhook for the kind, so these are all its checks: exactly one objective,
1-100 parameters, exactly one search space per parameter (uniform, logUniform, categorical)
with decimal bounds, min < max and a log-uniform min > 0, grid search over categorical
parameters only, ``parallelTrials <= numTrials``, a template without name and namespace, an
immutable spec; the template's TrainJob spec is checked as a TrainJob's is.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from wonderland.api.admission import Admission
from wonderland.api.schemas.optimization import OptimizationJobObject
from wonderland.errors import InvalidError
from wonderland.training.admission import check_trainjob, default_trainjob

__all__ = ["OPTIMIZATIONJOBS", "install"]

Obj = dict[str, Any]

OPTIMIZATIONJOBS = "optimizationjobs.trainer.kubeflow.org"
DOUBLE = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"
_DOUBLE = re.compile(DOUBLE)
DIRECTIONS = ("Maximize", "Minimize")
PARAMETER_TYPES = ("Int", "Float")
TEMPLATE = "spec.trainJobTemplate"


def install(admission: Admission) -> None:
    """Register the OptimizationJob defaults and checks into ``admission``."""
    admission.register_default(OPTIMIZATIONJOBS, _default)
    admission.register(OPTIMIZATIONJOBS, _check)


# -- defaults -----------------------------------------------------------------------------


def _default(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for objective in spec.get("objectives") or []:
        if isinstance(objective, dict):
            objective.setdefault("direction", "Minimize")
    spec.setdefault("searchAlgorithm", {"random": {}})
    spec.setdefault("numTrials", 1)
    spec.setdefault("parallelTrials", 1)
    for parameter in spec.get("parameters") or []:
        space = parameter.get("searchSpace") if isinstance(parameter, dict) else None
        for kind in ("uniform", "logUniform"):
            if isinstance(space, dict) and isinstance(space.get(kind), dict):
                space[kind].setdefault("type", "Float")
    template = spec.get("trainJobTemplate")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        # the CRD embeds TrainJobSpec with its defaults (runtimeRef kind, managedBy, suspend)
        default_trainjob({"spec": template["spec"]})


# -- the API server's messages --------------------------------------------------------------


def _cel(path: str, message: str) -> InvalidError:
    return InvalidError(path, f'Invalid value: "object": {message}')


def _count(path: str, items: list[Any], low: int, high: int) -> None:
    if len(items) < low:
        raise InvalidError(
            path,
            f"Invalid value: {len(items)}: {path} in body should have at least {low} items",
        )
    if len(items) > high:
        raise InvalidError(path, f"Too many: {len(items)}: must have at most {high} items")


def _length(path: str, value: str, low: int, high: int) -> None:
    if len(value) < low:
        raise InvalidError(
            path, f'Invalid value: "{value}": {path} in body should be at least {low} chars long'
        )
    if len(value.encode()) > high:
        raise InvalidError(path, f"Too long: may not be more than {high} bytes")


def _within(path: str, value: int | None, low: int, high: int) -> None:
    if value is None:
        return
    if value < low:
        raise InvalidError(
            path, f"Invalid value: {value}: {path} in body should be greater than or equal to {low}"
        )
    if value > high:
        raise InvalidError(
            path, f"Invalid value: {value}: {path} in body should be less than or equal to {high}"
        )


def _one_of(path: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        supported = ", ".join(f'"{a}"' for a in allowed)
        raise InvalidError(path, f'Unsupported value: "{value}": supported values: {supported}')


def _unique(path: str, keys: list[str], field: str) -> None:
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if key in seen:
            raise InvalidError(f"{path}[{i}]", f"Duplicate value: {json.dumps({field: key})}")
        seen.add(key)


def _double(path: str, value: str) -> float:
    _length(path, value, 1, 64)
    if not _DOUBLE.match(value):
        raise InvalidError(
            path, f"Invalid value: \"{value}\": {path} in body should match '{DOUBLE}'"
        )
    return float(value)


# -- the checks ------------------------------------------------------------------------------


def _check(new: Obj, old: Obj | None) -> None:
    raw = new.get("spec") or {}
    job = OptimizationJobObject.model_validate(new)
    spec = job.spec

    _count("spec.objectives", spec.objectives, 1, 1)
    for i, objective in enumerate(spec.objectives):
        _length(f"spec.objectives[{i}].metric", objective.metric, 1, 64)
        _one_of(f"spec.objectives[{i}].direction", objective.direction, DIRECTIONS)

    algorithm = spec.searchAlgorithm
    if algorithm is not None and (algorithm.random is None) == (algorithm.grid is None):
        raise _cel("spec.searchAlgorithm", "exactly one of the fields in [random grid] must be set")

    _count("spec.parameters", spec.parameters, 1, 100)
    _unique("spec.parameters", [p.name for p in spec.parameters], "name")
    for i, parameter in enumerate(spec.parameters):
        at = f"spec.parameters[{i}]"
        _length(f"{at}.name", parameter.name, 1, 64)
        space = parameter.searchSpace
        kinds = [space.uniform, space.logUniform, space.categorical]
        if sum(k is not None for k in kinds) != 1:
            raise _cel(
                f"{at}.searchSpace",
                "exactly one of the fields in [uniform logUniform categorical] must be set",
            )
        for kind, bounded in (("uniform", space.uniform), ("logUniform", space.logUniform)):
            if bounded is None:
                continue
            where = f"{at}.searchSpace.{kind}"
            low = _double(f"{where}.min", bounded.min)
            high = _double(f"{where}.max", bounded.max)
            _one_of(f"{where}.type", bounded.type, PARAMETER_TYPES)
            if kind == "logUniform" and not low > 0.0:
                raise _cel(where, "min must be strictly greater than 0")
            if not low < high:
                raise _cel(where, "min must be strictly less than max")
        if space.categorical is not None:
            where = f"{at}.searchSpace.categorical.choices"
            choices = space.categorical.choices
            _count(where, choices, 1, 100)
            for j, choice in enumerate(choices):
                if len(choice.encode()) > 64:
                    raise InvalidError(f"{where}[{j}]", "Too long: may not be more than 64 bytes")
                if choice in choices[:j]:
                    raise InvalidError(f"{where}[{j}]", f'Duplicate value: "{choice}"')

    _within("spec.numTrials", spec.numTrials, 1, 100)
    _within("spec.parallelTrials", spec.parallelTrials, 1, 100)

    metadata = (raw.get("trainJobTemplate") or {}).get("metadata")
    if isinstance(metadata, dict) and ("name" in metadata or "namespace" in metadata):
        raise _cel(f"{TEMPLATE}.metadata", "name and namespace cannot be set in a template.")
    _check_template_spec(raw["trainJobTemplate"]["spec"])

    if old is not None and (old.get("spec") or {}) != raw:
        raise _cel("spec", "OptimizationJobSpec is immutable and cannot be updated after creation")
    # the CEL rules run on the defaulted object: numTrials 1, parallelTrials 1, random search
    num = spec.numTrials if spec.numTrials is not None else 1
    parallel = spec.parallelTrials if spec.parallelTrials is not None else 1
    if parallel > num:
        raise _cel("spec", "parallelTrials cannot exceed numTrials")
    if (
        algorithm is not None
        and algorithm.grid is not None
        and not all(p.searchSpace.categorical is not None for p in spec.parameters)
    ):
        raise _cel(
            "spec",
            "Grid search requires all parameters to be Categorical; Uniform and LogUniform "
            "are not supported.",
        )


def _check_template_spec(template_spec: Obj) -> None:
    """The TrainJob CRD's rules on the embedded spec, at the template's field paths."""
    trainjob: Obj = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "template"},
        "spec": copy.deepcopy(template_spec),
    }
    try:
        check_trainjob(trainjob, None)
    except InvalidError as exc:
        field = exc.field or "spec"
        if field.startswith("spec"):
            raise InvalidError(f"{TEMPLATE}.{field}", exc.reason_text) from None
        raise
