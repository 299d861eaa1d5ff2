"""What the JobSet webhook and CRD do before a JobSet is stored: defaults, and the checks a
user meets on create and update, with upstream's messages (no controllers run here)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jobset_support import JOBSETS, jobset, rjob

from wonderland.api.schemas.jobset import JobSetObject
from wonderland.errors import ConfigError, InvalidError
from wonderland.settings import Settings
from wonderland.store import Store
from wonderland.workloads import admission, jobset_admission
from wonderland.workloads.jobset_jobs import JobSetView, build_job
from wonderland.workloads.views import ObjectMetaView

Obj = dict[str, Any]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "state")
    admission.install(opened.admission)
    jobset_admission.install(opened.admission)
    try:
        yield opened
    finally:
        opened.close()


def refused(store: Store, obj: Obj) -> str:
    with pytest.raises(InvalidError) as caught:
        store.create(obj)
    return str(caught.value)


def test_defaults_are_the_webhooks_and_the_crds(store: Store) -> None:
    container = {"name": "m", "image": "python:3.12", "command": ["true"]}
    bare = {"name": "w", "template": {"spec": {"template": {"spec": {"containers": [container]}}}}}
    policy = {"maxRestarts": 2, "rules": [{"action": "FailJobSet"}]}
    made = store.create(jobset("d", bare, failurePolicy=policy))
    spec = made["spec"]
    (w,) = spec["replicatedJobs"]
    assert (w["replicas"], w["groupName"]) == (1, "default")
    assert w["template"]["spec"]["completionMode"] == "Indexed"
    assert w["template"]["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert spec["successPolicy"] == {"operator": "All"}
    assert spec["startupPolicy"] == {"startupPolicyOrder": "AnyOrder"}
    assert spec["network"] == {"enableDNSHostnames": True, "publishNotReadyAddresses": True}
    assert spec["failurePolicy"]["restartStrategy"] == "Recreate"
    assert spec["failurePolicy"]["rules"][0]["name"] == "failurePolicyRule0"


CASES: list[tuple[str, Callable[[Obj], None], str]] = [
    (
        "depends on in the first replicated job",
        lambda js: js["spec"]["replicatedJobs"][0].update(
            dependsOn=[{"name": "b", "status": "Ready"}]
        ),
        "spec.replicatedJobs[0].dependsOn: DependsOn can't be set for the first ReplicatedJob",
    ),
    (
        "depends on a later replicated job",
        lambda js: js["spec"]["replicatedJobs"][1].update(
            dependsOn=[{"name": "c", "status": "Complete"}]
        ),
        "spec.replicatedJobs[1].dependsOn[0].name: replicatedJob: b cannot depend on "
        "replicatedJob: c",
    ),
    (
        "depends on with in-order startup",
        lambda js: (
            js["spec"]["replicatedJobs"][1].update(dependsOn=[{"name": "a", "status": "Ready"}]),
            js["spec"].update(startupPolicy={"startupPolicyOrder": "InOrder"}),
        ),
        'spec: Invalid value: "object": StartupPolicy and DependsOn APIs are mutually exclusive',
    ),
    (
        "a status other than Ready or Complete",
        lambda js: js["spec"]["replicatedJobs"][1].update(
            dependsOn=[{"name": "a", "status": "Running"}]
        ),
        "spec.replicatedJobs[1].dependsOn[0].status: must be one of 'Ready' or 'Complete'",
    ),
    (
        "two replicated jobs of one name",
        lambda js: js["spec"]["replicatedJobs"][2].update(name="a"),
        'spec.replicatedJobs[2]: Duplicate value: map[string]interface {}{"name":"a"}',
    ),
    (
        "a replicated job name that is not a DNS label",
        lambda js: js["spec"]["replicatedJobs"][0].update(name="Big_Job"),
        'spec.replicatedJobs[0].name: Invalid value: "s-Big_Job-0": a DNS-1035 label must '
        "consist of lower case alphanumeric characters or '-', start with an alphabetic "
        "character, and end with an alphanumeric character",
    ),
    (
        "job names longer than 63 characters",
        lambda js: js["metadata"].update(name="a" * 60),
        f'spec.replicatedJobs[0].name: Invalid value: "{"a" * 60}-a-0": JobSet name is too '
        "long, job names generated for this JobSet will exceed 63 characters",
    ),
    (
        "pod names longer than 63 characters",
        lambda js: js["metadata"].update(name="a" * 52),
        f'spec.replicatedJobs[0].name: Invalid value: "{"a" * 52}-a-0": JobSet name is too '
        "long, pod names generated for this JobSet will exceed 63 characters",
    ),
    (
        "negative replicas",
        lambda js: js["spec"]["replicatedJobs"][0].update(replicas=-1),
        "spec.replicatedJobs[0].replicas: Invalid value: -1: spec.replicatedJobs[0].replicas in "
        "body should be greater than or equal to 0",
    ),
    (
        "a subdomain that is not a DNS label",
        lambda js: js["spec"].update(network={"subdomain": "my.net"}),
        'spec.network.subdomain: Invalid value: "my.net": a DNS-1035 label must consist',
    ),
    (
        "managedBy that is not a domain-prefixed path",
        lambda js: js["spec"].update(managedBy="kueue"),
        'spec.managedBy: Invalid value: "kueue": must be a domain-prefixed path (such as '
        '"acme.io/foo")',
    ),
    (
        "a success policy naming an unknown replicated job",
        lambda js: js["spec"].update(
            successPolicy={"operator": "Any", "targetReplicatedJobs": ["x"]}
        ),
        "spec.successPolicy.targetReplicatedJobs: invalid replicatedJob name 'x' does not appear "
        "in .spec.ReplicatedJobs",
    ),
    (
        "an unknown job failure reason",
        lambda js: js["spec"].update(
            failurePolicy={
                "rules": [{"action": "FailJobSet", "onJobFailureReasons": ["OOMKilled"]}]
            }
        ),
        "spec.failurePolicy.rules[0].onJobFailureReasons: invalid job failure reason "
        "'OOMKilled' in failure policy is not a recognized job failure reason",
    ),
    (
        "a rule name with a hyphen",
        lambda js: js["spec"].update(
            failurePolicy={"rules": [{"name": "fail-fast", "action": "FailJobSet"}]}
        ),
        "spec.failurePolicy.rules[0].name: invalid failure policy rule name 'fail-fast'",
    ),
    (
        "RestartJob while its feature gate is off",
        lambda js: js["spec"].update(failurePolicy={"rules": [{"action": "RestartJob"}]}),
        "spec.failurePolicy.rules: RestartJob and RestartJobAndIgnoreMaxRestarts failure policy "
        "actions are not allowed when RestartJob feature gate is disabled",
    ),
    (
        "in-place restart",
        lambda js: js["spec"].update(failurePolicy={"restartStrategy": "InPlaceRestart"}),
        "spec.failurePolicy.restartStrategy: InPlaceRestart restart strategy cannot be set when "
        "InPlaceRestart feature gate is disabled",
    ),
    (
        "a coordinator pod index past the completions",
        lambda js: js["spec"].update(coordinator={"replicatedJob": "a", "podIndex": 1}),
        "spec.coordinator.podIndex: coordinator pod index 1 is invalid for replicatedJob a job "
        "index 0",
    ),
    (
        "a coordinator in an unknown replicated job",
        lambda js: js["spec"].update(coordinator={"replicatedJob": "z"}),
        "spec.coordinator.replicatedJob: coordinator replicatedJob z does not exist",
    ),
    (
        "a negative ttlSecondsAfterFinished",
        lambda js: js["spec"].update(ttlSecondsAfterFinished=-5),
        "spec.ttlSecondsAfterFinished: Invalid value: -5: spec.ttlSecondsAfterFinished in body "
        "should be greater than or equal to 0",
    ),
    (
        "a claim template no container mounts",
        lambda js: js["spec"].update(
            volumeClaimPolicies=[
                {
                    "templates": [
                        {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
                    ]
                }
            ]
        ),
        "spec.replicatedJobs: replicatedJob containers don't have a matching volumeMount: data "
        "from VolumeClaimPolicies",
    ),
    (
        "a Job template the Job API would refuse",
        lambda js: js["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"].update(
            restartPolicy="Always"
        ),
        "spec.replicatedJobs[0].template.spec.template.spec.restartPolicy: Unsupported value: "
        '"Always": supported values: "OnFailure", "Never"',
    ),
]


@pytest.mark.parametrize(("what", "change", "message"), CASES, ids=[c[0] for c in CASES])
def test_refused_on_create_with_upstreams_message(
    store: Store, what: str, change: Callable[[Obj], None], message: str
) -> None:
    obj = jobset("s", rjob("a", "true"), rjob("b", "true"), rjob("c", "true"))
    change(obj)
    assert refused(store, obj).startswith(message)
    assert store.list(JOBSETS)[0] == []


def test_updates_keep_replicated_jobs_and_policies(store: Store) -> None:
    store.create(jobset("u", rjob("a", "true"), failurePolicy={"maxRestarts": 1}))

    def update(change: Callable[[Obj], None]) -> Obj:
        current = copy.deepcopy(store.get(JOBSETS, "default", "u"))
        change(current["spec"])
        return store.update(current)

    with pytest.raises(InvalidError) as caught:
        update(lambda s: s["replicatedJobs"][0].update(replicas=2))
    assert str(caught.value).startswith(
        "spec.replicatedJobs: Invalid value: field is immutable (replicatedJobs[0].replicas "
        "changed;"
    )
    with pytest.raises(
        InvalidError, match=r'spec.failurePolicy: Invalid value: "object": Value is immutable'
    ):
        update(lambda s: s["failurePolicy"].update(maxRestarts=3))
    with pytest.raises(
        InvalidError, match=r'spec.network: Invalid value: "object": Value is immutable'
    ):
        update(lambda s: s["network"].update(enableDNSHostnames=False))
    with pytest.raises(
        InvalidError, match=r"spec.managedBy: Invalid value: \"a.io/b\": field is immutable"
    ):
        update(lambda s: s.update(managedBy="a.io/b"))
    # Mutable: suspend, ttlSecondsAfterFinished; and the pod template while suspended.
    update(lambda s: s.update(suspend=True, ttlSecondsAfterFinished=30))

    def pod_path(spec: Obj) -> Obj:
        template: Obj = spec["replicatedJobs"][0]["template"]["spec"]["template"]
        return template

    changed = update(
        lambda s: (
            pod_path(s).setdefault("metadata", {}).update(labels={"kueue": "yes"}),
            pod_path(s)["spec"].update(nodeSelector={"pool": "a"}),
        )
    )
    assert pod_path(changed["spec"])["spec"]["nodeSelector"] == {"pool": "a"}
    with pytest.raises(InvalidError, match="immutable"):
        update(lambda s: pod_path(s)["spec"]["containers"][0].update(command=["false"]))


def test_jobs_of_the_node_selector_strategy_select_their_own_nodes() -> None:
    obj = jobset("ns", rjob("w", "true", replicas=2))
    obj["metadata"]["annotations"] = {
        "alpha.jobset.sigs.k8s.io/exclusive-topology": "cloud.google.com/gke-nodepool",
        "alpha.jobset.sigs.k8s.io/node-selector": "true",
    }
    jobset_admission.default_jobset(obj)
    js = JobSetObject.model_validate(obj)
    meta = ObjectMetaView.model_validate({**obj["metadata"], "namespace": "team", "uid": "u1"})
    job = build_job(JobSetView(js, meta), js.spec.replicatedJobs[0], 1, False)  # type: ignore[index]
    pod = job["spec"]["template"]
    assert job["metadata"]["name"] == "ns-w-1"
    assert pod["spec"]["nodeSelector"] == {"alpha.jobset.sigs.k8s.io/namespaced-job": "team_ns-w-1"}
    assert pod["spec"]["tolerations"] == [
        {
            "key": "alpha.jobset.sigs.k8s.io/no-schedule",
            "operator": "Exists",
            "effect": "NoSchedule",
        }
    ]
    for meta_block in (job["metadata"], pod["metadata"]):
        annotations = meta_block["annotations"]
        assert (
            annotations["alpha.jobset.sigs.k8s.io/exclusive-topology"]
            == "cloud.google.com/gke-nodepool"
        )
        assert "alpha.jobset.sigs.k8s.io/exclusive-topology" not in meta_block["labels"]
    assert job["spec"]["suspend"] is False and pod["spec"]["subdomain"] == "ns"


def test_the_restart_job_gate_is_the_only_one_that_turns_on() -> None:
    env = {"WONDERLAND_JOBSET_FEATURE_GATES": "RestartJob=true"}
    assert Settings.from_env(env).jobset_features() == {"RestartJob": True}
    assert Settings.from_env({}).jobset_features() == {}
    with pytest.raises(ConfigError, match="InPlaceRestart and ElasticJobSet cannot be turned on"):
        Settings.from_env({"WONDERLAND_JOBSET_FEATURE_GATES": "InPlaceRestart=true"})
