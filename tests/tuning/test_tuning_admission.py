"""What apply refuses, with Katib's messages, and the defaults it fills in."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from tuning_support import Tuner, experiment

from wonderland.errors import InvalidError

Obj = dict[str, Any]


def _spec(obj: Obj) -> Obj:
    return dict(obj["spec"])


def grid_double_without_step(obj: Obj) -> None:
    obj["spec"]["algorithm"]["algorithmName"] = "grid"


def cmaes_with_a_categorical(obj: Obj) -> None:
    obj["spec"]["algorithm"]["algorithmName"] = "cmaes"
    obj["spec"]["parameters"] += [
        {"name": "y", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
        {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
    ]
    obj["spec"]["trialTemplate"]["trialParameters"] += [
        {"name": "y", "reference": "y"},
        {"name": "opt", "reference": "opt"},
    ]
    obj["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0][
        "args"
    ] = ["${trialParameters.y}", "${trialParameters.opt}"]


def cmaes_with_one_dimension(obj: Obj) -> None:
    obj["spec"]["algorithm"]["algorithmName"] = "cmaes"


def undeclared_placeholder(obj: Obj) -> None:
    obj["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0][
        "args"
    ] = ["--lr=${trialParameters.lr}"]


def unknown_reference(obj: Obj) -> None:
    obj["spec"]["trialTemplate"]["trialParameters"][0]["reference"] = "learning_rate"


def unknown_algorithm(obj: Obj) -> None:
    obj["spec"]["algorithm"]["algorithmName"] = "hyperband"


def too_many_failures(obj: Obj) -> None:
    obj["spec"]["maxFailedTrialCount"] = 9


def unknown_setting(obj: Obj) -> None:
    obj["spec"]["algorithm"] = {
        "algorithmName": "tpe",
        "algorithmSettings": [{"name": "gamma", "value": "1"}],
    }


def sidecar_collector(obj: Obj) -> None:
    obj["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "PrometheusMetric"}}


def unsupported_condition(obj: Obj) -> None:
    obj["spec"]["trialTemplate"]["successCondition"] = "status.conditions.#.type"


def deployment_trial(obj: Obj) -> None:
    obj["spec"]["trialTemplate"]["trialSpec"]["apiVersion"] = "apps/v1"
    obj["spec"]["trialTemplate"]["trialSpec"]["kind"] = "Deployment"


def grid_smaller_than_max_trials(obj: Obj) -> None:
    obj["spec"]["algorithm"]["algorithmName"] = "grid"
    obj["spec"]["parameters"][0]["feasibleSpace"]["step"] = "0.5"


def bad_filter(obj: Obj) -> None:
    obj["spec"]["metricsCollectorSpec"] = {
        "collector": {"kind": "StdOut"},
        "source": {"filter": {"metricsFormat": ["loss:([0-9.]+)"]}},
    }


def bad_medianstop(obj: Obj) -> None:
    obj["spec"]["earlyStopping"] = {
        "algorithmName": "medianstop",
        "algorithmSettings": [{"name": "start_step", "value": "0"}],
    }


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            grid_double_without_step,
            "spec.algorithm",
            "Param x step is nil; For discrete search space, all parameters must include step",
        ),
        (
            cmaes_with_a_categorical,
            "spec.algorithm",
            "cmaes searches continuous parameters only; parameters ['opt']",
        ),
        (
            cmaes_with_one_dimension,
            "spec.algorithm",
            "cmaes only supports two or more dimensional continuous search space.",
        ),
        (
            undeclared_placeholder,
            "spec.trialTemplate",
            "parameters: ['${trialParameters.lr}'] in spec.trialTemplate not found in spec.trialParameters",
        ),
        (
            unknown_reference,
            "spec.trialTemplate.trialParameters[0].reference",
            "parameter reference learning_rate does not exist in spec.parameters",
        ),
        (
            unknown_algorithm,
            "spec.algorithm.algorithmName",
            "unable to get Suggestion config data for algorithm hyperband",
        ),
        (
            too_many_failures,
            "spec.maxFailedTrialCount",
            "should be less than or equal to spec.maxTrialCount",
        ),
        (unknown_setting, "spec.algorithm", "unknown setting gamma for algorithm tpe"),
        (
            sidecar_collector,
            "spec.metricsCollectorSpec.collector.kind",
            "wonderland collects metrics without sidecars",
        ),
        (unsupported_condition, "spec.trialTemplate.successCondition", "outside the GJSON subset"),
        (
            deployment_trial,
            "spec.trialTemplate",
            "wonderland runs trials as Job (batch/v1) and TrainJob",
        ),
        (
            grid_smaller_than_max_trials,
            "spec.algorithm",
            "Max Trial Count: 4 > all possible search combinations: 3",
        ),
        (
            bad_filter,
            "spec.metricsCollectorSpec.source.filter.metricsFormat",
            "two top subexpressions are required",
        ),
        (
            bad_medianstop,
            "spec.earlyStopping",
            "start_step must be greater or equal than one (>=1)",
        ),
    ],
)
async def test_apply_refuses_with_katibs_message(
    tuner: Tuner, change: Callable[[Obj], None], field: str, message: str
) -> None:
    obj = experiment("bad")
    change(obj)
    with pytest.raises(InvalidError) as refused:
        tuner.create(obj)
    assert refused.value.field == field
    assert message in str(refused.value)


async def test_a_goal_on_the_wrong_side_is_accepted_as_on_katib(tuner: Tuner) -> None:
    tuner.create(
        experiment(
            "wrong-side",
            objective={"type": "minimize", "objectiveMetricName": "loss", "goal": -1.0},
        )
    )
    assert tuner.experiment("wrong-side")["spec"]["objective"]["goal"] == -1.0


async def test_defaults_are_katibs(tuner: Tuner) -> None:
    obj = experiment(
        "defaults",
        objective={
            "type": "maximize",
            "objectiveMetricName": "acc",
            "additionalMetricNames": ["loss"],
        },
    )
    del obj["spec"]["parallelTrialCount"]
    stored = tuner.create(obj)["spec"]
    assert stored["parallelTrialCount"] == 3
    assert stored["resumePolicy"] == "Never"
    assert stored["objective"]["metricStrategies"] == [
        {"name": "acc", "value": "max"},
        {"name": "loss", "value": "max"},
    ]
    assert stored["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    assert (
        stored["trialTemplate"]["successCondition"]
        == 'status.conditions.#(type=="Complete")#|#(status=="True")#'
    )
    assert (
        stored["trialTemplate"]["failureCondition"]
        == 'status.conditions.#(type=="Failed")#|#(status=="True")#'
    )
    assert stored["parameters"][0]["feasibleSpace"]["distribution"] == "uniform"


async def test_only_the_trial_counts_are_editable(tuner: Tuner) -> None:
    stored = tuner.create(experiment("edit", max_trials=2, parallel=1))
    stored["spec"]["maxTrialCount"] = 3
    tuner.store.update(stored)
    current = tuner.experiment("edit")
    current["spec"]["objective"]["type"] = "maximize"
    with pytest.raises(
        InvalidError,
        match=re.escape(
            "only spec.parallelTrialCount, spec.maxTrialCount and spec.maxFailedTrialCount "
            "are editable"
        ),
    ):
        tuner.store.update(current)
