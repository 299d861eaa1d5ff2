"""The JobSet controller with real pods: JobSets make Jobs, the Job controller makes pods and
the kubelet runs each pod's command on this machine."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support.daemon import wait_until
from jobset_support import (
    JOBSETS,
    STAMP,
    jobs_of,
    jobset,
    js_condition,
    js_finished,
    js_status,
    pods_of,
    rjob,
    trace,
)
from workloads_support import events_of

from wonderland.api import printing, registry
from wonderland.errors import InvalidError
from wonderland.platform import Platform
from wonderland.runtime.kubelet import Kubelet
from wonderland.runtime.logs import LogOptions
from wonderland.settings import Settings

Obj = dict[str, Any]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "jobsets"
JOB_KEYS = (
    "jobset-name",
    "jobset-uid",
    "replicatedjob-name",
    "replicatedjob-replicas",
    "global-replicas",
    "job-index",
    "job-global-index",
    "job-key",
    "restart-attempt",
    "group-name",
    "group-replicas",
    "job-group-index",
    "coordinator",
)


def _edit(platform: Platform, name: str, change: Callable[[Obj], object]) -> None:
    current = platform.store.get(JOBSETS, "default", name)
    change(current["spec"])
    platform.store.update(current)


async def test_replicated_jobs_become_labelled_jobs_and_pods_with_hostnames(
    platform: Platform,
) -> None:
    store = platform.store
    store.create(
        jobset(
            "train",
            rjob("driver", "echo host=$HOSTNAME"),
            rjob("workers", "echo worker $JOB_COMPLETION_INDEX", replicas=2, parallelism=2),
            coordinator={"replicatedJob": "driver"},
        )
    )
    final = await js_finished(store, "train")
    assert (final["type"], final["reason"]) == ("Completed", "AllJobsCompleted")
    assert final["message"] == "jobset completed successfully"
    stored = store.get(JOBSETS, "default", "train")
    status = stored["status"]
    assert status["terminalState"] == "Completed" and status["restarts"] == 0
    assert status["replicatedJobsStatus"] == [
        {"name": n, "ready": 0, "succeeded": s, "failed": 0, "active": 0, "suspended": 0}
        for n, s in (("driver", 1), ("workers", 2))
    ]
    # The webhook's defaults are stored.
    spec = stored["spec"]
    assert spec["network"] == {"enableDNSHostnames": True, "publishNotReadyAddresses": True}
    assert spec["successPolicy"] == {"operator": "All"}
    assert spec["replicatedJobs"][0]["replicas"] == 1
    assert spec["replicatedJobs"][0]["template"]["spec"]["completionMode"] == "Indexed"
    jobs = {j["metadata"]["name"]: j for j in jobs_of(store, "train")}
    assert sorted(jobs) == ["train-driver-0", "train-workers-0", "train-workers-1"]
    uid = stored["metadata"]["uid"]
    labels = jobs["train-workers-1"]["metadata"]["labels"]
    expected = {
        "jobset-name": "train",
        "jobset-uid": uid,
        "replicatedjob-name": "workers",
        "replicatedjob-replicas": "2",
        "global-replicas": "3",
        "job-index": "1",
        "job-global-index": "2",
        "job-key": hashlib.sha1(b"default/train-workers-1").hexdigest(),
        "restart-attempt": "0",
        "group-name": "default",
        "group-replicas": "3",
        "job-group-index": "2",
        "coordinator": "train-driver-0-0.train",
    }
    assert {k: labels[f"jobset.sigs.k8s.io/{k}"] for k in JOB_KEYS} == expected
    annotations = jobs["train-workers-1"]["metadata"]["annotations"]
    assert {k: annotations[f"jobset.sigs.k8s.io/{k}"] for k in JOB_KEYS} == expected
    (owner,) = jobs["train-driver-0"]["metadata"]["ownerReferences"]
    assert (owner["apiVersion"], owner["kind"], owner["name"]) == (
        "jobset.x-k8s.io/v1alpha2",
        "JobSet",
        "train",
    )
    assert owner["uid"] == uid and owner["controller"] and owner["blockOwnerDeletion"]
    pods = pods_of(store, "train")
    hosts = sorted(p["spec"]["hostname"] for p in pods)
    assert hosts == [
        "train-driver-0-0",
        "train-workers-0-0",
        "train-workers-0-1",
        "train-workers-1-0",
        "train-workers-1-1",
    ]
    for pod in pods:
        assert pod["spec"]["subdomain"] == "train"
        pod_labels = pod["metadata"]["labels"]
        job = pod_labels["batch.kubernetes.io/job-name"]
        assert (
            pod_labels["jobset.sigs.k8s.io/job-key"]
            == hashlib.sha1(f"default/{job}".encode()).hexdigest()
        )
        assert pod_labels["jobset.sigs.k8s.io/coordinator"] == "train-driver-0-0.train"
        assert pod_labels["jobset.sigs.k8s.io/priority"] == "0"  # the pod webhook's
    driver = next(p for p in pods if p["spec"]["hostname"] == "train-driver-0-0")
    log = platform.require(Kubelet).read_log(
        "default", driver["metadata"]["name"], None, False, LogOptions()
    )
    assert log.decode().strip() == "host=train-driver-0-0"
    assert ("Normal", "AllJobsCompleted", "jobset completed successfully") in events_of(
        store, "train", "JobSet"
    )
    # As `kubectl get jobsets` prints it: the CRD's columns.
    kind = registry.lookup("jobsets")
    table = printing.table(kind, [stored])
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == ["Name", "TerminalState", "Restarts", "Completed", "Suspended", "Age"]
    assert table["rows"][0]["cells"][:5] == ["train", "Completed", 0, "True", None]
    # Deleting the JobSet deletes its Jobs and their pods.
    store.delete(JOBSETS, "default", "train")
    assert jobs_of(store, "train") == [] and pods_of(store, "train") == []


async def test_depends_on_waits_for_complete_then_ready(platform: Platform, tmp_path: Path) -> None:
    store = platform.store
    log = tmp_path / "trace"
    store.create(
        jobset(
            "chain",
            rjob(
                "init",
                f"echo init-start {STAMP} >> {log}; sleep 0.3; echo init-end {STAMP} >> {log}",
            ),
            rjob(
                "launcher",
                # runs until a worker has started (60 s at most): workers that waited for
                # the launcher to complete instead of to be ready would start after its end
                f"echo launcher-start {STAMP} >> {log}; for i in $(seq 1200); do "
                f"grep -q worker-start {log} && break; sleep 0.05; done; "
                f"echo launcher-end {STAMP} >> {log}",
                dependsOn=[{"name": "init", "status": "Complete"}],
            ),
            rjob(
                "worker",
                f"echo worker-start {STAMP} >> {log}",
                replicas=2,
                dependsOn=[{"name": "launcher", "status": "Ready"}],
            ),
        )
    )
    final = await js_finished(store, "chain")
    assert final["type"] == "Completed"
    seen = trace(log)
    # Complete: the launcher starts after the initializer ended; Ready: the workers start while
    # the launcher (ready once its container runs) still runs.
    assert seen["init-end"] < seen["launcher-start"]
    assert seen["launcher-start"] < seen["worker-start"] < seen["launcher-end"]
    assert sorted(j["metadata"]["name"] for j in jobs_of(store, "chain")) == [
        "chain-init-0",
        "chain-launcher-0",
        "chain-worker-0",
        "chain-worker-1",
    ]


async def test_in_order_startup_waits_for_each_replicated_job_to_be_ready(
    platform: Platform, tmp_path: Path
) -> None:
    store = platform.store
    log = tmp_path / "trace"
    ready = tmp_path / "ready"
    probe = {"exec": {"command": ["test", "-e", str(ready)]}, "periodSeconds": 1}
    driver = rjob(
        "driver",
        f"sleep 0.3; echo driver-ready {STAMP} >> {log}; touch {ready}; sleep 1",
    )
    driver["template"]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = probe
    store.create(
        jobset(
            "ordered",
            driver,
            rjob("workers", f"echo worker-start {STAMP} >> {log}", replicas=2),
            startupPolicy={"startupPolicyOrder": "InOrder"},
        )
    )
    await wait_until(
        lambda: js_condition(store, "ordered", "StartupPolicyInProgress"), 10, "in progress"
    )
    assert [j["metadata"]["name"] for j in jobs_of(store, "ordered")] == ["ordered-driver-0"]
    await js_finished(store, "ordered")
    seen = trace(log)
    assert seen["driver-ready"] < seen["worker-start"]
    done = js_condition(store, "ordered", "StartupPolicyCompleted")
    assert done is not None and done["reason"] == "InOrderStartupPolicyCompleted"
    assert done["message"] == "in order startup policy has completed"
    assert js_condition(store, "ordered", "StartupPolicyInProgress", "False") is not None
    seen_events = events_of(store, "ordered", "JobSet")
    assert (
        "Normal",
        "InOrderStartupPolicyInProgress",
        "in order startup policy is in progress",
    ) in seen_events
    assert (
        "Normal",
        "InOrderStartupPolicyCompleted",
        "in order startup policy has completed",
    ) in seen_events


async def test_a_failed_job_fails_the_jobset_and_stops_the_others(platform: Platform) -> None:
    store = platform.store
    store.create(jobset("doomed", rjob("bad", "exit 3"), rjob("slow", "sleep 30")))
    final = await js_finished(store, "doomed")
    assert (final["type"], final["reason"]) == ("Failed", "FailedJobs")
    assert final["message"] == (
        "jobset failed due to one or more job failures (first failed job: doomed-bad-0)"
    )
    assert js_status(store, "doomed")["terminalState"] == "Failed"
    # The running Job is deleted, its pod stopped first (foreground deletion).
    await wait_until(
        lambda: [j["metadata"]["name"] for j in jobs_of(store, "doomed")] == ["doomed-bad-0"],
        30,
        "the slow Job to be deleted",
    )
    assert all(
        p["metadata"]["labels"]["jobset.sigs.k8s.io/replicatedjob-name"] == "bad"
        for p in pods_of(store, "doomed")
    )
    assert ("Warning", "FailedJobs", final["message"]) in events_of(store, "doomed", "JobSet")


async def test_restarts_recreate_every_job_until_max_restarts(
    platform: Platform, tmp_path: Path
) -> None:
    store = platform.store
    marker = tmp_path / "failed-once"
    flaky = f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; exit 1"
    attempt_env = {
        "name": "ATTEMPT",
        "valueFrom": {
            "fieldRef": {"fieldPath": "metadata.labels['jobset.sigs.k8s.io/restart-attempt']"}
        },
    }
    other = rjob("other", "echo attempt=$ATTEMPT; sleep 0.2")
    other["template"]["spec"]["template"]["spec"]["containers"][0]["env"] = [attempt_env]
    store.create(jobset("retry", rjob("flaky", flaky), other, failurePolicy={"maxRestarts": 1}))
    blocking = {"maxRestarts": 1, "restartStrategy": "BlockingRecreate"}
    store.create(jobset("hopeless", rjob("bad", "exit 1"), failurePolicy=blocking))
    final = await js_finished(store, "retry")
    assert final["type"] == "Completed"
    status = js_status(store, "retry")
    assert status["restarts"] == 1 and status["restartsCountTowardsMax"] == 1
    restarting = js_condition(store, "retry", "RestartingJobSet", "False")
    assert restarting is not None and restarting["reason"] == "JobSetCompleted"
    message = "applying RestartJobSet failure policy action (first failed job: retry-flaky-0)"
    seen = events_of(store, "retry", "JobSet")
    assert ("Warning", "DefaultFailurePolicy", message) in seen
    assert ("Warning", "RestartJobSetFailurePolicyAction", message) in seen
    # Every Job is of the second attempt; those of the first are gone with their pods.
    for job in jobs_of(store, "retry"):
        assert job["metadata"]["labels"]["jobset.sigs.k8s.io/restart-attempt"] == "1"
    pods = pods_of(store, "retry")
    assert {p["metadata"]["labels"]["jobset.sigs.k8s.io/restart-attempt"] for p in pods} == {"1"}
    other_pod = next(p for p in pods if "other" in p["metadata"]["name"])
    log = platform.require(Kubelet).read_log(
        "default", other_pod["metadata"]["name"], None, False, LogOptions()
    )
    assert log.decode().strip() == "attempt=1"
    failed = await js_finished(store, "hopeless")
    assert (failed["reason"], failed["message"]) == (
        "ReachedMaxRestarts",
        "jobset failed due to reaching max number of restarts (first failed job: hopeless-bad-0)",
    )
    assert js_status(store, "hopeless")["restarts"] == 1


async def test_failure_policy_rules_pick_the_action(platform: Platform, tmp_path: Path) -> None:
    store = platform.store
    marker = tmp_path / "failed-once"
    attempt_env = {
        "name": "ATTEMPT",
        "valueFrom": {
            "fieldRef": {"fieldPath": "metadata.labels['jobset.sigs.k8s.io/restart-attempt']"}
        },
    }
    leader = rjob("leader", 'if [ "$ATTEMPT" = 1 ]; then exit 2; fi; sleep 30')
    leader["template"]["spec"]["template"]["spec"]["containers"][0]["env"] = [attempt_env]
    policy = {
        "maxRestarts": 0,
        "rules": [
            {
                "name": "ignoreFlaky",
                "action": "RestartJobSetAndIgnoreMaxRestarts",
                "onJobFailureReasons": ["BackoffLimitExceeded"],
                "targetReplicatedJobs": ["flaky"],
            },
            {"action": "FailJobSet", "targetReplicatedJobs": ["leader"]},
        ],
    }
    flaky = f"if [ -e {marker} ]; then sleep 30; fi; touch {marker}; exit 1"
    store.create(jobset("rules", leader, rjob("flaky", flaky), failurePolicy=policy))
    final = await js_finished(store, "rules")
    assert (final["type"], final["reason"]) == ("Failed", "FailJobSetFailurePolicyAction")
    assert final["message"] == (
        "applying FailJobSet failure policy action (first failed job: rules-leader-0)"
    )
    status = js_status(store, "rules")
    # The first restart was the flaky rule's, which does not count towards maxRestarts.
    assert status["restarts"] == 1 and "restartsCountTowardsMax" not in status
    stored = store.get(JOBSETS, "default", "rules")
    assert stored["spec"]["failurePolicy"]["rules"][1]["name"] == "failurePolicyRule1"
    assert (
        "Warning",
        "FailurePolicy_ignoreFlaky",
        (
            "applying RestartJobSetAndIgnoreMaxRestarts failure policy action "
            "(first failed job: rules-flaky-0)"
        ),
    ) in events_of(store, "rules", "JobSet")


@pytest.fixture
async def gated(tmp_path: Path) -> AsyncIterator[Platform]:
    """A platform whose JobSet controller has the RestartJob feature gate on."""
    settings = Settings(
        home=tmp_path / "gated",
        gateway_port=0,
        api_port=0,
        backoff_seconds=0.2,
        jobset_feature_gates="RestartJob=true",
    )
    platform = Platform.open(settings)
    platform.install_plugins(("wonderland.workloads",))
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()
        platform.store.close()


async def test_restart_job_recreates_only_the_failed_job(gated: Platform, tmp_path: Path) -> None:
    store = gated.store
    marker = tmp_path / "failed-once"
    command = (
        f'if [ "$INDEX" = 1 ] && [ ! -e {marker} ]; then touch {marker}; exit 1; fi; sleep 0.5'
    )
    index_env = {
        "name": "INDEX",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['jobset.sigs.k8s.io/job-index']"}},
    }
    workers = rjob("w", command, replicas=2)
    workers["template"]["spec"]["template"]["spec"]["containers"][0]["env"] = [index_env]
    policy = {"maxRestarts": 1, "rules": [{"action": "RestartJob"}]}
    store.create(jobset("single", workers, failurePolicy=policy))

    def first_uid() -> str | None:
        jobs = {j["metadata"]["name"]: j for j in jobs_of(store, "single")}
        job = jobs.get("single-w-0")
        return job["metadata"]["uid"] if job else None

    kept = await wait_until(first_uid, 10, "the first Job")
    final = await js_finished(store, "single")
    assert final["type"] == "Completed"
    jobs = {j["metadata"]["name"]: j for j in jobs_of(store, "single")}
    assert jobs["single-w-0"]["metadata"]["uid"] == kept  # untouched
    attempts = {
        name: job["metadata"]["labels"]["jobset.sigs.k8s.io/job-restart-attempt"]
        for name, job in jobs.items()
    }
    assert attempts == {"single-w-0": "0", "single-w-1": "1"}
    status = js_status(store, "single")
    (entry,) = status["replicatedJobsStatus"]
    assert entry["jobRestarts"] == [0, 1] and entry["jobRestartsCountTowardsMax"] == [0, 1]
    assert status["restarts"] == 0
    assert (
        "Warning",
        "RestartJobFailurePolicyAction",
        "applying RestartJob failure policy action (first failed job: single-w-1)",
    ) in events_of(store, "single", "JobSet")


async def test_suspend_holds_the_jobs_and_resume_brings_template_changes(
    platform: Platform,
) -> None:
    store = platform.store
    store.create(jobset("held", rjob("w", "echo run", replicas=2), suspend=True))
    suspended = await wait_until(
        lambda: js_condition(store, "held", "Suspended"), 10, "the Suspended condition"
    )
    assert (suspended["reason"], suspended["message"]) == ("SuspendedJobs", "jobset is suspended")
    await wait_until(
        lambda: (
            len(jobs_of(store, "held")) == 2
            and (js_status(store, "held").get("replicatedJobsStatus") or [{}])[0].get("suspended")
            == 2
        ),
        10,
        "two suspended Jobs",
    )
    assert all(j["spec"]["suspend"] for j in jobs_of(store, "held"))
    assert pods_of(store, "held") == []
    # While suspended, a queue may change the pod template's labels; not the replicas.
    with pytest.raises(
        InvalidError, match=r"spec.replicatedJobs: Invalid value: field is immutable"
    ):
        _edit(platform, "held", lambda spec: spec["replicatedJobs"][0].__setitem__("replicas", 3))

    def add_label(spec: Obj) -> None:
        pod = spec["replicatedJobs"][0]["template"]["spec"]["template"]
        pod.setdefault("metadata", {})["labels"] = {"queue": "gold"}

    _edit(platform, "held", add_label)
    _edit(platform, "held", lambda spec: spec.__setitem__("suspend", False))
    final = await js_finished(store, "held")
    assert final["type"] == "Completed"
    resumed = js_condition(store, "held", "Suspended", "False")
    assert resumed is not None and (resumed["reason"], resumed["message"]) == (
        "ResumeJobs",
        "jobset is resumed",
    )
    pods = pods_of(store, "held")
    assert len(pods) == 2 and all(p["metadata"]["labels"]["queue"] == "gold" for p in pods)
    seen = events_of(store, "held", "JobSet")
    assert ("Normal", "SuspendedJobs", "jobset is suspended") in seen
    assert ("Normal", "ResumeJobs", "jobset is resumed") in seen

    # Not suspended any more: the template is immutable again.
    def relabel(spec: Obj) -> None:
        spec["replicatedJobs"][0]["template"]["spec"]["template"]["metadata"]["labels"] = {
            "queue": "silver"
        }

    with pytest.raises(InvalidError, match="field is immutable"):
        _edit(platform, "held", relabel)


async def test_ttl_after_finished_deletes_the_jobset_its_jobs_and_pods(platform: Platform) -> None:
    store = platform.store
    store.create(jobset("brief", rjob("w", "true"), ttlSecondsAfterFinished=1))
    await js_finished(store, "brief")
    assert jobs_of(store, "brief")  # still there right after it finished
    await wait_until(lambda: js_status(store, "brief") == {}, 10, "the JobSet to be deleted")
    assert jobs_of(store, "brief") == [] and pods_of(store, "brief") == []


async def test_volume_claim_policies_make_shared_claims(platform: Platform) -> None:
    store = platform.store
    mounts = [{"name": "model", "mountPath": "/workspace/model"}]
    init = rjob("init", "echo weights > /workspace/model/w.txt")
    node = rjob(
        "node",
        "cat /workspace/model/w.txt; echo ckpt > /workspace/ckpt/$JOB_COMPLETION_INDEX",
        parallelism=2,
        dependsOn=[{"name": "init", "status": "Complete"}],
    )
    init["template"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = mounts
    node["template"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        *mounts,
        {"name": "ckpt", "mountPath": "/workspace/ckpt"},
    ]
    claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    policies = [
        {"templates": [{"metadata": {"name": "model"}, "spec": claim}]},
        {
            "templates": [{"metadata": {"name": "ckpt"}, "spec": claim}],
            "retentionPolicy": {"whenDeleted": "Retain"},
        },
    ]
    store.create(jobset("vcp", init, node, volumeClaimPolicies=policies))
    final = await js_finished(store, "vcp")
    assert final["type"] == "Completed", js_status(store, "vcp")
    model = store.get("persistentvolumeclaims", "default", "model-vcp")
    ckpt = store.get("persistentvolumeclaims", "default", "ckpt-vcp")
    assert model["metadata"]["labels"] == {"jobset.sigs.k8s.io/jobset-name": "vcp"}
    assert model["metadata"]["ownerReferences"][0]["name"] == "vcp"
    assert "ownerReferences" not in ckpt["metadata"]  # Retain: it outlives the JobSet
    kubelet = platform.require(Kubelet)
    nodes = [p for p in pods_of(store, "vcp") if "node" in p["metadata"]["name"]]
    assert len(nodes) == 2
    for pod in nodes:
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["ckpt"]["persistentVolumeClaim"] == {"claimName": "ckpt-vcp"}
        log = kubelet.read_log("default", pod["metadata"]["name"], None, False, LogOptions())
        assert log.decode().strip() == "weights"
    store.delete(JOBSETS, "default", "vcp")
    await wait_until(
        lambda: (
            [c["metadata"]["name"] for c in store.list("persistentvolumeclaims", "default")[0]]
            == ["ckpt-vcp"]
        ),
        10,
        "the Delete claim to go and the Retain claim to stay",
    )


async def test_a_jobset_managed_by_another_controller_is_left_alone(platform: Platform) -> None:
    store = platform.store
    store.create(jobset("elsewhere", rjob("w", "true"), managedBy="kueue.x-k8s.io/multikueue"))
    store.create(jobset("here", rjob("w", "true")))
    await js_finished(store, "here")  # reconciled after the other one was
    assert jobs_of(store, "elsewhere") == [] and js_status(store, "elsewhere") == {}


@pytest.mark.slow
async def test_upstream_examples_run_to_their_end(platform: Platform) -> None:
    store = platform.store
    names = ["paralleljobs", "group", "startup-driver-ready", "failure-policy"]
    for name in names:
        store.create(yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text()))
    for name in names[:3]:
        final = await js_finished(store, name if name != "group" else "group-example")
        assert final["type"] == "Completed", (name, final)
    group = {
        p["metadata"]["labels"]["jobset.sigs.k8s.io/replicatedjob-name"]: p["metadata"]["labels"]
        for p in pods_of(store, "group-example")
    }
    assert (
        group["rj-2"]["jobset.sigs.k8s.io/group-name"],
        group["rj-2"]["jobset.sigs.k8s.io/job-group-index"],
    ) == ("group-b", "0")
    assert group["rj-2"]["jobset.sigs.k8s.io/job-global-index"] == "1"
    # BlockingRecreate, restarted three times, then out of restarts.
    final = await js_finished(store, "failure-policy", timeout=60)
    assert (final["type"], final["reason"]) == ("Failed", "ReachedMaxRestarts")
    assert js_status(store, "failure-policy")["restarts"] == 3
