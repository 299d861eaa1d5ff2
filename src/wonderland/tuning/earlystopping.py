"""Katib's ``medianstop`` early stopping: the rules the service hands out with each new
suggestion, and the check its metrics collector makes while a trial runs.

As Katib's service computes it, the rule's value is the mean, over succeeded trials, of
each trial's average of its first ``start_step`` objective values (upstream names it the
median); a rule exists once ``min_trials_required`` trials succeeded. A running trial stops
once it has reported ``start_step`` values and its best value so far is still worse than
the rule's value (``greater`` when minimising, ``less`` when maximising).
"""

from __future__ import annotations

from collections.abc import Sequence

from wonderland.api.schemas.katib import EarlyStoppingRule, EarlyStoppingSpec, ObjectiveSpec
from wonderland.tuning.observations import MetricLog

__all__ = [
    "DEFAULT_MIN_TRIALS",
    "DEFAULT_START_STEP",
    "broken_rule",
    "median_rule",
    "validate_early_stopping",
]

DEFAULT_MIN_TRIALS = 3
DEFAULT_START_STEP = 4


def validate_early_stopping(spec: EarlyStoppingSpec | None) -> str | None:
    """The medianstop service's ``ValidateEarlyStoppingSettings`` (None when fine)."""
    if spec is None:
        return None
    if not spec.algorithmName:
        return "Required value: spec.earlyStopping.algorithmName must be specified"
    if spec.algorithmName != "medianstop":
        return (
            f'Invalid value: "{spec.algorithmName}": unable to get EarlyStopping config data '
            f"for algorithm {spec.algorithmName}: wonderland runs medianstop"
        )
    for setting in spec.algorithmSettings or []:
        try:
            if setting.name == "min_trials_required":
                if not int(setting.value) > 0:
                    return "min_trials_required must be greater than zero (>0)"
            elif setting.name == "start_step":
                if not int(setting.value) >= 1:
                    return "start_step must be greater or equal than one (>=1)"
            else:
                return f"unknown setting {setting.name} for algorithm medianstop"
        except ValueError as exc:
            return f"failed to validate {setting.name}({setting.value}): {exc}"
    return None


def _settings(spec: EarlyStoppingSpec) -> tuple[int, int]:
    values = {s.name: int(s.value) for s in spec.algorithmSettings or []}
    return (
        values.get("min_trials_required", DEFAULT_MIN_TRIALS),
        values.get("start_step", DEFAULT_START_STEP),
    )


def median_rule(
    spec: EarlyStoppingSpec,
    objective: ObjectiveSpec,
    succeeded_logs: Sequence[Sequence[MetricLog]],
) -> EarlyStoppingRule | None:
    """The rule for new trials, from the objective logs of the succeeded trials."""
    min_trials, start_step = _settings(spec)
    averages: list[float] = []
    for logs in succeeded_logs:
        values = [_number(log.value) for log in logs[:start_step]]
        numbers = [v for v in values if v is not None]
        if numbers:
            averages.append(sum(numbers) / len(numbers))
    if len(averages) < min_trials:
        return None
    return EarlyStoppingRule(
        name=objective.objectiveMetricName,
        value=repr(sum(averages) / len(averages)),
        comparison="less" if objective.type == "maximize" else "greater",
        startStep=start_step,
    )


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def broken_rule(
    rules: Sequence[EarlyStoppingRule], logs: Sequence[MetricLog], objective: ObjectiveSpec
) -> EarlyStoppingRule | None:
    """The first rule the trial's logs break (it should stop), or None."""
    for rule in rules:
        values = [
            v
            for v in (_number(log.value) for log in logs if log.name == rule.name)
            if v is not None
        ]
        if len(values) < max(rule.startStep, 1):
            continue
        best = max(values) if objective.type == "maximize" else min(values)
        threshold = float(rule.value)
        if (rule.comparison == "less" and best < threshold) or (
            rule.comparison == "greater" and best > threshold
        ):
            return rule
        if rule.comparison == "equal" and best == threshold:
            return rule
    return None
