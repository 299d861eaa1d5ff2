"""Trainer's OptimizationJob API (main branch): the kind, the CRD's defaults and its
validation rules with the API server's messages, through the platform's store and the
manifest loader ``wonderland apply`` uses."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from training_support import Trainer

from wonderland.api import manifests, registry
from wonderland.errors import InvalidError
from wonderland.platform import default_admission
from wonderland.settings import Settings

OPTIMIZATIONJOBS = "optimizationjobs.trainer.kubeflow.org"
Obj = dict[str, Any]


def optimization_job(name: str = "tune-iris", **spec: Any) -> Obj:
    body: Obj = {
        "objectives": [{"metric": "loss"}],
        "parameters": [
            {"name": "lr", "searchSpace": {"logUniform": {"min": "1e-4", "max": "0.1"}}},
            {"name": "optimizer", "searchSpace": {"categorical": {"choices": ["sgd", "adam"]}}},
        ],
        "trainJobTemplate": {
            "metadata": {"labels": {"team": "ml"}},
            "spec": {
                "runtimeRef": {"name": "torch-distributed"},
                "trainer": {"command": ["python", "train.py"]},
            },
        },
    }
    body.update(spec)
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "OptimizationJob",
        "metadata": {"name": name},
        "spec": body,
    }


def with_parameter(space: Obj, **spec: Any) -> Obj:
    return optimization_job(parameters=[{"name": "x", "searchSpace": space}], **spec)


def test_the_kind_is_namespaced_with_a_status_subresource(trainer: Trainer) -> None:
    for name in ("optimizationjobs", "optimizationjob", "OptimizationJob", OPTIMIZATIONJOBS):
        kind = registry.lookup(name)
        assert kind.resource == OPTIMIZATIONJOBS
    assert kind.namespaced and kind.subresources == ("status",)
    assert kind.api_version == "trainer.kubeflow.org/v1alpha1"


def test_the_crd_defaults_are_filled(trainer: Trainer) -> None:
    stored = trainer.store.create(optimization_job())
    spec = stored["spec"]
    assert spec["objectives"] == [{"metric": "loss", "direction": "Minimize"}]
    assert spec["searchAlgorithm"] == {"random": {}}
    assert (spec["numTrials"], spec["parallelTrials"]) == (1, 1)
    assert spec["parameters"][0]["searchSpace"]["logUniform"]["type"] == "Float"
    template = spec["trainJobTemplate"]["spec"]
    assert template["runtimeRef"] == {
        "name": "torch-distributed",
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
    }
    assert template["managedBy"] == "trainer.kubeflow.org/trainjob-controller"
    assert template["suspend"] is False


def test_a_full_job_is_kept_as_written(trainer: Trainer) -> None:
    job = optimization_job(
        objectives=[{"metric": "accuracy", "direction": "Maximize"}],
        searchAlgorithm={"random": {"seed": 42}},
        numTrials=20,
        parallelTrials=4,
    )
    job["spec"]["parameters"].append(
        {"name": "epochs", "searchSpace": {"uniform": {"min": "1", "max": "10", "type": "Int"}}}
    )
    stored = trainer.store.create(job)
    assert stored["spec"]["searchAlgorithm"] == {"random": {"seed": 42}}
    assert stored["spec"]["parameters"][2]["searchSpace"]["uniform"]["type"] == "Int"
    grid = optimization_job(
        "grid",
        searchAlgorithm={"grid": {}},
        parameters=[{"name": "o", "searchSpace": {"categorical": {"choices": ["a", "b"]}}}],
    )
    assert trainer.store.create(grid)["spec"]["searchAlgorithm"] == {"grid": {}}


_SPACE = "spec.parameters[0].searchSpace"


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (
            optimization_job(objectives=[]),
            "spec.objectives: Invalid value: 0: spec.objectives in body should have at least 1 items",
        ),
        (
            optimization_job(objectives=[{"metric": "loss"}, {"metric": "acc"}]),
            "spec.objectives: Too many: 2: must have at most 1 items",
        ),
        (
            optimization_job(objectives=[{"metric": "loss", "direction": "Down"}]),
            'spec.objectives[0].direction: Unsupported value: "Down": supported values: '
            '"Maximize", "Minimize"',
        ),
        (
            optimization_job(parameters=[]),
            "spec.parameters: Invalid value: 0: spec.parameters in body should have at least 1 items",
        ),
        (
            optimization_job(
                parameters=[
                    {"name": f"p{i}", "searchSpace": {"categorical": {"choices": ["a"]}}}
                    for i in range(101)
                ]
            ),
            "spec.parameters: Too many: 101: must have at most 100 items",
        ),
        (
            with_parameter({}),
            f'{_SPACE}: Invalid value: "object": exactly one of the fields in '
            "[uniform logUniform categorical] must be set",
        ),
        (
            with_parameter(
                {"uniform": {"min": "0", "max": "1"}, "categorical": {"choices": ["a"]}}
            ),
            f'{_SPACE}: Invalid value: "object": exactly one of the fields in '
            "[uniform logUniform categorical] must be set",
        ),
        (
            with_parameter({"uniform": {"min": "1", "max": "1"}}),
            f'{_SPACE}.uniform: Invalid value: "object": min must be strictly less than max',
        ),
        (
            with_parameter({"logUniform": {"min": "0", "max": "1"}}),
            f'{_SPACE}.logUniform: Invalid value: "object": min must be strictly greater than 0',
        ),
        (
            with_parameter({"logUniform": {"min": "0.5", "max": "0.1"}}),
            f'{_SPACE}.logUniform: Invalid value: "object": min must be strictly less than max',
        ),
        (
            with_parameter({"uniform": {"min": "abc", "max": "1"}}),
            f'{_SPACE}.uniform.min: Invalid value: "abc": {_SPACE}.uniform.min in body should '
            "match '^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?$'",
        ),
        (
            with_parameter({"uniform": {"min": "0", "max": "1", "type": "Double"}}),
            f'{_SPACE}.uniform.type: Unsupported value: "Double": supported values: "Int", "Float"',
        ),
        (
            with_parameter({"categorical": {"choices": ["a", "a"]}}),
            f'{_SPACE}.categorical.choices[1]: Duplicate value: "a"',
        ),
        (
            optimization_job(searchAlgorithm={"grid": {}}),
            'spec: Invalid value: "object": Grid search requires all parameters to be '
            "Categorical; Uniform and LogUniform are not supported.",
        ),
        (
            optimization_job(searchAlgorithm={}),
            'spec.searchAlgorithm: Invalid value: "object": exactly one of the fields in '
            "[random grid] must be set",
        ),
        (
            optimization_job(numTrials=3, parallelTrials=4),
            'spec: Invalid value: "object": parallelTrials cannot exceed numTrials',
        ),
        (
            optimization_job(parallelTrials=2),
            'spec: Invalid value: "object": parallelTrials cannot exceed numTrials',
        ),
        (
            optimization_job(numTrials=101),
            "spec.numTrials: Invalid value: 101: spec.numTrials in body should be less than "
            "or equal to 100",
        ),
    ],
)
def test_invalid_jobs_are_refused_with_the_crd_messages(
    trainer: Trainer, job: Obj, message: str
) -> None:
    with pytest.raises(InvalidError) as info:
        trainer.store.create(job)
    assert str(info.value) == message


def test_a_template_may_not_name_its_trainjob(trainer: Trainer) -> None:
    for field in ("name", "namespace"):
        job = optimization_job()
        job["spec"]["trainJobTemplate"]["metadata"][field] = "mine"
        with pytest.raises(InvalidError) as info:
            trainer.store.create(job)
        assert str(info.value) == (
            'spec.trainJobTemplate.metadata: Invalid value: "object": name and namespace '
            "cannot be set in a template."
        )


def test_the_template_spec_is_checked_as_a_trainjob_spec(trainer: Trainer) -> None:
    job = optimization_job()
    job["spec"]["trainJobTemplate"]["spec"]["trainer"]["numProcPerNode"] = 0
    with pytest.raises(InvalidError) as info:
        trainer.store.create(job)
    assert str(info.value) == (
        "spec.trainJobTemplate.spec.trainer.numProcPerNode: Invalid value: numProcPerNode "
        "must be greater than or equal to 1"
    )
    job = optimization_job()
    job["spec"]["trainJobTemplate"]["spec"]["trainer"]["replicas"] = 2
    with pytest.raises(InvalidError, match=r"spec\.trainJobTemplate\.spec\.trainer\.replicas"):
        trainer.store.create(job)


def test_the_spec_is_immutable_and_the_status_is_not(trainer: Trainer) -> None:
    stored = trainer.store.create(optimization_job())
    changed = copy.deepcopy(stored)
    changed["spec"]["numTrials"] = 5
    with pytest.raises(InvalidError) as info:
        trainer.store.update(changed)
    assert str(info.value) == (
        'spec: Invalid value: "object": OptimizationJobSpec is immutable and cannot be updated '
        "after creation"
    )
    relabelled = copy.deepcopy(stored)
    relabelled["metadata"]["labels"] = {"owner": "me"}
    stored = trainer.store.update(relabelled)
    stored["status"] = {
        "conditions": [
            {
                "type": "Complete",
                "status": "True",
                "reason": "MaxTrialsReached",
                "message": "1 of 1 trials ran",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
        "result": {"trainJobName": "tune-iris-1", "parameters": [{"name": "lr", "value": "0.01"}]},
    }
    stored = trainer.store.update_status(stored)
    assert stored["status"]["result"]["trainJobName"] == "tune-iris-1"


def test_apply_names_the_file_and_line_of_the_bad_field(tmp_path: Path) -> None:
    # what `wonderland apply` checks before it sends anything: no platform runs here
    text = """\
apiVersion: trainer.kubeflow.org/v1alpha1
kind: OptimizationJob
metadata:
  name: tune
spec:
  objectives:
    - metric: loss
  parameters:
    - name: lr
      searchSpace:
        uniform:
          min: "0.5"
          max: "0.1"
  trainJobTemplate:
    spec:
      runtimeRef:
        name: torch-distributed
"""
    loaded = manifests.load_text(text, "tune.yaml")
    with pytest.raises(manifests.ManifestError) as info:
        manifests.check_all(loaded, default_admission(Settings(home=tmp_path / "home")))
    assert str(info.value) == (
        'tune.yaml:11: spec.parameters[0].searchSpace.uniform: Invalid value: "object": '
        "min must be strictly less than max"
    )
