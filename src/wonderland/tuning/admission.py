"""What Katib's webhooks and services check on Experiments, with their messages.

The defaults are Katib's ``Experiment.SetDefault`` (parallelTrialCount 3, resumePolicy
Never, metric strategies from the objective type, the StdOut collector, the success and
failure conditions and primary pod labels of Job and TrainJob trials, uniform
distributions). The checks are the experiment validator's, plus what the suggestion and
early-stopping services would refuse later on a cluster (settings of the algorithm,
parameters it cannot search), so that a mistake is a 4xx at apply time here instead of a
failed Suggestion. What wonderland does not run (other trial kinds, collectors that need
a sidecar) is refused with a message that says so.
"""

from __future__ import annotations

import json
import re
from typing import Any

from wonderland.api.admission import Admission, ObjectReader
from wonderland.api.schemas.katib import (
    CollectorSpec,
    ExperimentObject,
    ExperimentSpec,
    FileSystemPath,
    MetricsCollectorSpec,
    MetricStrategy,
    SourceSpec,
)
from wonderland.errors import ConfigError, InvalidError
from wonderland.tuning import algorithms, job_conditions
from wonderland.tuning.earlystopping import validate_early_stopping
from wonderland.tuning.templates import (
    JOB,
    PARAM_REFERENCE,
    RUN_KINDS,
    TRAINJOB,
    is_meta_reference,
    template_text,
)

__all__ = ["COLLECTORS", "EXPERIMENTS", "SUGGESTIONS", "TRIALS", "defaults_for", "install"]

Obj = dict[str, Any]

EXPERIMENTS = "experiments.kubeflow.org"
TRIALS = "trials.kubeflow.org"
SUGGESTIONS = "suggestions.kubeflow.org"

JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
TRAINJOB_PRIMARY_POD_LABELS = {
    "jobset.sigs.k8s.io/replicatedjob-name": "node",
    "batch.kubernetes.io/job-completion-index": "0",
}
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?")
_TWO_GROUPS = re.compile(r".*\(.*\).*\(.*\).*")
COLLECTORS = ("StdOut", "File", "Push")  # the metrics collectors wonderland runs
SIDECAR_COLLECTORS = ("TensorFlowEvent", "PrometheusMetric", "Custom")


def install(admission: Admission) -> None:
    """Register the Experiment defaults and checks into ``admission``."""
    admission.register_default(EXPERIMENTS, _default_experiment)
    admission.register_lookup(EXPERIMENTS, _check_experiment)


# -- defaults ------------------------------------------------------------------------------


def _strategy_for(kind: str) -> str:
    return {"minimize": "min", "maximize": "max"}.get(kind, "latest")


def defaults_for(spec: ExperimentSpec) -> ExperimentSpec:
    """``spec`` with Katib's defaults filled in (a copy)."""
    spec = spec.model_copy(deep=True)
    if spec.parallelTrialCount is None:
        spec.parallelTrialCount = 3
    if not spec.resumePolicy:
        spec.resumePolicy = "Never"
    objective = spec.objective
    if objective is not None:
        strategies = list(objective.metricStrategies or [])
        named = {s.name for s in strategies}
        default = _strategy_for(objective.type)
        if objective.objectiveMetricName not in named:
            strategies.append(
                MetricStrategy.model_validate(
                    {"name": objective.objectiveMetricName, "value": default}
                )
            )
        for name in objective.additionalMetricNames or []:
            if name not in named:
                strategies.append(MetricStrategy.model_validate({"name": name, "value": default}))
        objective.metricStrategies = strategies
    template = spec.trialTemplate
    if template is not None and template.trialSpec is not None:
        kind = template.trialSpec.get("kind")
        if kind in ("Job", "TrainJob"):
            template.successCondition = template.successCondition or JOB_SUCCESS
            template.failureCondition = template.failureCondition or JOB_FAILURE
        if kind == "TrainJob" and not template.primaryPodLabels:
            template.primaryPodLabels = dict(TRAINJOB_PRIMARY_POD_LABELS)
    collector = spec.metricsCollectorSpec or MetricsCollectorSpec()
    if collector.collector is None or not collector.collector.kind:
        collector.collector = CollectorSpec(kind="StdOut")
    if collector.kind() == "File":
        source = collector.source or SourceSpec()
        path = source.fileSystemPath or FileSystemPath()
        path.kind = path.kind or "File"
        path.path = path.path or "/var/log/katib/metrics.log"
        path.format = path.format or "TEXT"
        source.fileSystemPath = path
        collector.source = source
    spec.metricsCollectorSpec = collector
    for param in spec.parameters or []:
        if not param.feasibleSpace.distribution:
            param.feasibleSpace.distribution = "uniform"
    return spec


def _default_experiment(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    try:
        typed = ExperimentObject.model_validate(obj).spec
    except ValueError:
        return  # the schema check reports it
    obj["spec"] = defaults_for(typed).model_dump(mode="json", exclude_none=True)


# -- checks ----------------------------------------------------------------------------------


def _check_experiment(new: Obj, old: Obj | None, reader: ObjectReader) -> None:
    name = str((new.get("metadata") or {}).get("name") or "")
    match = _NAME.match(name)
    if match is None or match.group(0) != name or len(name) > 40:
        raise InvalidError(
            "metadata.name",
            f'Invalid value: "{name}": name must consist of lower case alphanumeric '
            "characters or '-', start with an alphabetic character, and end with an "
            "alphanumeric character (e.g. 'my-name', or 'abc-123', regex used for validation "
            "is '^[a-z]([-a-z0-9]*[a-z0-9])?)') and may not be longer than 40 characters.",
        )
    spec = defaults_for(ExperimentObject.model_validate(new).spec)
    _check_counts(spec)
    if old is not None:
        _check_update(spec, defaults_for(ExperimentObject.model_validate(old).spec))
    _check_objective(spec)
    _check_algorithm(spec)
    message = validate_early_stopping(spec.earlyStopping)
    if message is not None:
        raise InvalidError("spec.earlyStopping", message)
    if spec.resumePolicy not in ("Never", "LongRunning", "FromVolume"):
        raise InvalidError(
            "spec.resumePolicy", f'Invalid value: "{spec.resumePolicy}": invalid ResumePolicyType'
        )
    if not spec.parameters:
        if spec.nasConfig is not None:
            raise InvalidError(
                "spec.nasConfig",
                "Unsupported value: neural architecture search (enas, darts) needs Katib's "
                "NAS services, which wonderland does not run; use spec.parameters",
            )
        raise InvalidError(
            "spec", "Required value: spec.parameters or spec.nasConfig must be specified"
        )
    if spec.nasConfig is not None:
        raise InvalidError(
            "spec", "Invalid value: only one of spec.parameters and spec.nasConfig can be specified"
        )
    _check_parameters(spec)
    _check_trial_template(spec, reader)
    _check_collector(spec)
    _check_settings(spec)


def _check_counts(spec: ExperimentSpec) -> None:
    if spec.maxFailedTrialCount is not None and spec.maxFailedTrialCount < 0:
        raise InvalidError(
            "spec.maxFailedTrialCount",
            f"Invalid value: {spec.maxFailedTrialCount}: should not be less than 0",
        )
    if spec.maxTrialCount is not None and spec.maxTrialCount <= 0:
        raise InvalidError(
            "spec.maxTrialCount", f"Invalid value: {spec.maxTrialCount}: must be greater than 0"
        )
    if spec.parallelTrialCount is not None and spec.parallelTrialCount <= 0:
        raise InvalidError(
            "spec.parallelTrialCount",
            f"Invalid value: {spec.parallelTrialCount}: must be greater than 0",
        )
    if (
        spec.maxFailedTrialCount is not None
        and spec.maxTrialCount is not None
        and spec.maxFailedTrialCount > spec.maxTrialCount
    ):
        raise InvalidError(
            "spec.maxFailedTrialCount",
            f"Invalid value: {spec.maxFailedTrialCount}: should be less than or equal to "
            "spec.maxTrialCount",
        )
    if (
        spec.parallelTrialCount is not None
        and spec.maxTrialCount is not None
        and spec.parallelTrialCount > spec.maxTrialCount
    ):
        raise InvalidError(
            "spec.parallelTrialCount",
            f"Invalid value: {spec.parallelTrialCount}: should be less than or equal to "
            "spec.maxTrialCount",
        )


def _check_update(spec: ExperimentSpec, old: ExperimentSpec) -> None:
    editable = {"parallelTrialCount", "maxTrialCount", "maxFailedTrialCount"}
    if spec.model_dump(exclude=editable) != old.model_dump(exclude=editable):
        raise InvalidError(
            "spec",
            "Forbidden: only spec.parallelTrialCount, spec.maxTrialCount and "
            "spec.maxFailedTrialCount are editable",
        )


def _check_objective(spec: ExperimentSpec) -> None:
    objective = spec.objective
    if objective is None:
        raise InvalidError("spec.objective", "Required value: must be specified")
    if objective.type not in ("minimize", "maximize"):
        raise InvalidError(
            "spec.objective.type",
            f'Invalid value: "{objective.type}": must be minimize or maximize',
        )
    if not objective.objectiveMetricName:
        raise InvalidError(
            "spec.objective.objectiveMetricName", "Required value: must be specified"
        )
    if objective.objectiveMetricName in (objective.additionalMetricNames or []):
        raise InvalidError(
            "spec.objective.additionalMetricNames",
            f"Invalid value: {objective.additionalMetricNames}: should not contain "
            "spec.objective.objectiveMetricName",
        )


def _check_algorithm(spec: ExperimentSpec) -> None:
    algorithm = spec.algorithm
    if algorithm is None:
        raise InvalidError("spec.algorithm", "Required value: must be specified")
    if not algorithm.algorithmName:
        raise InvalidError("spec.algorithm.algorithmName", "Required value: must be specified")
    if algorithm.algorithmName not in algorithms.ALGORITHMS:
        known = ", ".join(algorithms.ALGORITHMS)
        raise InvalidError(
            "spec.algorithm.algorithmName",
            f'Invalid value: "{algorithm.algorithmName}": unable to get Suggestion config data '
            f"for algorithm {algorithm.algorithmName}: wonderland runs {known} (through "
            "Optuna); hyperband, pbt, enas and darts need Katib's own services",
        )


def _check_parameters(spec: ExperimentSpec) -> None:
    seen: set[str] = set()
    for i, param in enumerate(spec.parameters or []):
        path = f"spec.parameters[{i}]"
        if param.name in seen:
            raise InvalidError(f"{path}.name", f"Duplicate value: parameter {param.name}")
        seen.add(param.name)
        kind = param.parameterType
        if kind not in ("int", "double", "discrete", "categorical"):
            raise InvalidError(
                f"{path}.parameterType",
                f'Invalid value: "{kind}": parameterType: {kind} is not supported',
            )
        space = param.feasibleSpace
        if space.distribution not in ("uniform", "logUniform", "normal", "logNormal"):
            raise InvalidError(
                f"{path}.feasibleSpace.distribution",
                f'Invalid value: "{space.distribution}": distribution: {space.distribution} is not supported',
            )
        if kind in ("int", "double"):
            if space.list:
                raise InvalidError(
                    f"{path}.feasibleSpace.list",
                    f"Invalid value: feasibleSpace.list is not supported for parameterType: {kind}",
                )
            if not space.max or not space.min:
                raise InvalidError(
                    f"{path}.feasibleSpace.max",
                    f"Required value: feasibleSpace.max or feasibleSpace.min must be specified for parameterType: {kind}",
                )
            if space.distribution in ("normal", "logNormal"):
                raise InvalidError(
                    f"{path}.feasibleSpace.distribution",
                    f"Unsupported distribution {space.distribution} for parameter {param.name}. "
                    f"The Optuna suggestion service supports only UNIFORM and LOG_UNIFORM for "
                    f"{kind} parameters.",
                )
            try:
                low, high = float(space.min), float(space.max)
                step = float(space.step) if space.step else None
            except ValueError:
                raise InvalidError(
                    f"{path}.feasibleSpace",
                    f"Invalid value: min {space.min!r}, max {space.max!r} and step "
                    f"{space.step!r} of parameter {param.name} must be numbers",
                ) from None
            if kind == "int" and not all(
                v.lstrip("-").isdigit() for v in (space.min, space.max, space.step or "1")
            ):
                raise InvalidError(
                    f"{path}.feasibleSpace",
                    f"Invalid value: int parameter {param.name} needs integer min, max and step",
                )
            if low > high:
                raise InvalidError(
                    f"{path}.feasibleSpace",
                    f"Invalid value: min {space.min} of parameter {param.name} is greater than max {space.max}",
                )
            if step is not None and step <= 0:
                raise InvalidError(
                    f"{path}.feasibleSpace.step",
                    f"Invalid value: step of parameter {param.name} must be greater than 0",
                )
        else:
            if space.max or space.min or space.step:
                raise InvalidError(
                    f"{path}.feasibleSpace",
                    f"Invalid value: feasibleSpace .max, .min and .step is not supported for parameterType: {kind}",
                )
            if not space.list:
                raise InvalidError(
                    f"{path}.feasibleSpace", "Required value: feasibleSpace must be specified"
                )


def _check_trial_template(spec: ExperimentSpec, reader: ObjectReader) -> None:
    path = "spec.trialTemplate"
    template = spec.trialTemplate
    if template is None:
        raise InvalidError(path, "Required value: must be specified")
    if not template.primaryContainerName:
        raise InvalidError(f"{path}.primaryContainerName", "Required value: must be specified")
    if template.trialParameters is None:
        raise InvalidError(f"{path}.trialParameters", "Required value: must be specified")
    if template.trialSpec is None and template.configMap is None:
        raise InvalidError(
            f"{path}.TrialSource",
            "Required value: spec.trialTemplate.trialSpec or spec.trialTemplate.configMap must be specified",
        )
    if template.trialSpec is not None and template.configMap is not None:
        raise InvalidError(
            path,
            "Required value: only one of spec.trialTemplate.trialSpec or spec.trialTemplate.configMap can be specified",
        )
    source = template.configMap
    if source is not None and not (
        source.configMapName and source.configMapNamespace and source.templatePath
    ):
        raise InvalidError(
            f"{path}.configMap",
            "Required value: configMapName, configMapNamespace and templatePath must be specified",
        )
    text = template_text(template, reader)
    names = {p.name for p in spec.parameters or []}
    seen_names: set[str] = set()
    seen_refs: set[str] = set()
    for i, param in enumerate(template.trialParameters):
        where = f"{path}.trialParameters[{i}]"
        if not param.name or not param.reference or "{" in param.name or "}" in param.name:
            raise InvalidError(
                where,
                "Invalid value: name and reference must be specified and name must not contain '{' or '}'",
            )
        if param.name in seen_names:
            raise InvalidError(
                f"{where}.name",
                f"Invalid value: parameter name {param.name} can't be duplicated in spec.trialTemplate.trialParameters",
            )
        if param.reference in seen_refs:
            raise InvalidError(
                f"{where}.reference",
                f"Invalid value: parameter reference {param.reference} can't be duplicated in spec.trialTemplate.trialParameters",
            )
        seen_names.add(param.name)
        seen_refs.add(param.reference)
        if not is_meta_reference(param.reference) and param.reference not in names:
            raise InvalidError(
                f"{where}.reference",
                f'Invalid value: "{param.reference}": parameter reference {param.reference} does '
                f"not exist in spec.parameters: {sorted(names)}",
            )
        placeholder = f"${{trialParameters.{param.name}}}"
        if placeholder not in text:
            raise InvalidError(
                f"{where}.name",
                f'Invalid value: "{param.name}": parameter name: {param.name} in '
                "spec.trialParameters not found in spec.trialTemplate",
            )
        text = text.replace(placeholder, "test-value")
    left = sorted(set(PARAM_REFERENCE.findall(text)))
    if left:
        declared = [p.name for p in template.trialParameters]
        raise InvalidError(
            path,
            f"Invalid value: parameters: {left} in spec.trialTemplate not found in "
            f"spec.trialParameters: {declared}",
        )
    run: Obj = json.loads(text)
    meta = run.get("metadata") or {}
    if meta.get("name") or meta.get("namespace"):
        raise InvalidError(
            path,
            "Invalid value: metadata.name and metadata.namespace in spec.trialTemplate must be omitted",
        )
    if not run.get("apiVersion") or not run.get("kind"):
        raise InvalidError(
            path, "Required value: APIVersion and Kind in spec.trialTemplate must be specified"
        )
    gvk = (run["apiVersion"], run["kind"])
    if gvk not in RUN_KINDS:
        raise InvalidError(
            path,
            f"Unsupported value: {run['kind']} ({run['apiVersion']}) trials: wonderland runs "
            f"trials as {JOB[1]} ({JOB[0]}) and {TRAINJOB[1]} ({TRAINJOB[0]})",
        )
    for field in ("successCondition", "failureCondition"):
        if not getattr(template, field):
            raise InvalidError(
                path, "Required value: successCondition and failureCondition must be specified"
            )
        try:
            job_conditions.parse(getattr(template, field))
        except job_conditions.UnsupportedConditionError as exc:
            raise InvalidError(f"{path}.{field}", f"Invalid value: {exc}") from None
    if gvk == JOB:
        containers = (((run.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
            "containers"
        ) or []
        names_found = [c.get("name") for c in containers if isinstance(c, dict)]
        if template.primaryContainerName not in names_found:
            raise InvalidError(
                f"{path}.primaryContainerName",
                f'Invalid value: "{template.primaryContainerName}": the trial Job has no '
                f"container of that name (containers: {names_found})",
            )


def _check_collector(spec: ExperimentSpec) -> None:
    path = "spec.metricsCollectorSpec"
    collector = spec.metricsCollectorSpec
    assert collector is not None
    kind = collector.kind()
    if kind in SIDECAR_COLLECTORS:
        raise InvalidError(
            f"{path}.collector.kind",
            f'Unsupported value: "{kind}": wonderland collects metrics without sidecars and '
            f"supports {', '.join(COLLECTORS)} (a TrainJob trial also reads "
            "status.trainerStatus.metrics)",
        )
    if kind not in COLLECTORS:
        raise InvalidError(
            f"{path}.collector.kind",
            f'Invalid value: "{kind}": invalid metrics collector kind: {kind}',
        )
    source = collector.source
    if kind == "File":
        assert source is not None and source.fileSystemPath is not None
        fs = source.fileSystemPath
        if fs.kind != "File" or not fs.path.startswith("/"):
            raise InvalidError(
                f"{path}.source.fileSystemPath.path",
                "Required value: file path where metrics file exists is required",
            )
        if fs.format not in ("TEXT", "JSON"):
            raise InvalidError(
                f"{path}.source.fileSystemPath.format",
                "Required value: format of metrics file is required for metrics collector",
            )
        if fs.format == "JSON" and source.filter is not None:
            raise InvalidError(
                f"{path}.source.filter",
                "Invalid value: filter must be nil when format of metrics file is json",
            )
    for fmt in (source.filter.metricsFormat or []) if source and source.filter else []:
        try:
            re.compile(fmt)
        except re.error as exc:
            raise InvalidError(
                f"{path}.source.filter.metricsFormat",
                f'Invalid value: "{fmt}": invalid filter: {exc}',
            ) from None
        if not _TWO_GROUPS.match(fmt):
            raise InvalidError(
                f"{path}.source.filter.metricsFormat",
                f'Invalid value: "{fmt}": two top subexpressions are required',
            )


def _check_settings(spec: ExperimentSpec) -> None:
    try:
        algorithms.require_optuna()
    except ConfigError as exc:
        raise InvalidError("spec.algorithm", str(exc)) from None
    message = algorithms.validate_settings(spec)
    if message is not None:
        raise InvalidError("spec.algorithm", f"Validation failed: {message}")
