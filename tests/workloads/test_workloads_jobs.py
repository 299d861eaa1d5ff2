"""The Job controller with real pods: the kubelet runs each pod's command on this machine."""

from __future__ import annotations

import re
from pathlib import Path

from _support.daemon import wait_until
from workloads_support import (
    condition,
    events_of,
    finished,
    job,
    pods_of,
    running,
    set_pod_status,
    status,
)

from wonderland.controllers import events
from wonderland.errors import NotFoundError
from wonderland.platform import Platform
from wonderland.runtime.kubelet import Kubelet, LogRequestError
from wonderland.runtime.logs import LogOptions
from wonderland.settings import Settings
from wonderland.workloads.jobs import JobReconciler

PYTHON_STAMP = "python3 -c 'import time; print(time.time())'"


def _max_overlap(lines: list[str]) -> int:
    moments = []
    for line in lines:
        what, stamp = line.split()
        moments.append((float(stamp), 1 if what == "start" else -1))
    current = peak = 0
    for _, step in sorted(moments, key=lambda m: (m[0], m[1])):
        current += step
        peak = max(peak, current)
    return peak


async def test_completions_with_parallelism_run_at_most_parallelism_pods(
    platform: Platform, tmp_path: Path
) -> None:
    store = platform.store
    trace = tmp_path / "trace"
    command = (
        f"echo start $({PYTHON_STAMP}) >> {trace}; echo working; sleep 0.4; "
        f"echo end $({PYTHON_STAMP}) >> {trace}"
    )
    store.create(job("batch", command, completions=5, parallelism=2))
    final = await finished(store, "batch")
    assert final["reason"] == "CompletionsReached"
    assert final["message"] == "Reached expected number of succeeded pods"
    current = status(store, "batch")
    kinds = [c["type"] for c in current["conditions"]]
    assert kinds == ["SuccessCriteriaMet", "Complete"]
    assert current["succeeded"] == 5 and "failed" not in current and "active" not in current
    assert current["completionTime"] and current["startTime"]
    assert current["uncountedTerminatedPods"] == {} and current["ready"] == 0
    assert _max_overlap(trace.read_text().splitlines()) == 2
    # As SetDefaults_Job does: a Job without labels gets its pod template's.
    labels = store.get("jobs.batch", "default", "batch")["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "batch"
    pods = pods_of(store, "batch")
    assert len(pods) == 5
    for pod in pods:
        meta = pod["metadata"]
        assert re.fullmatch(r"batch-[a-z0-9]{5}", meta["name"])
        assert pod["status"]["phase"] == "Succeeded"
        assert meta.get("finalizers", []) == []  # counted: the tracking finalizer is gone
        (owner,) = meta["ownerReferences"]
        assert owner["kind"] == "Job" and owner["controller"] and owner["blockOwnerDeletion"]
    # Finished pods stay with their logs until the Job goes.
    kubelet = platform.require(Kubelet)
    log = kubelet.read_log("default", pods[0]["metadata"]["name"], None, False, LogOptions())
    assert b"working" in log
    seen = events_of(store, "batch")
    assert seen.count(("Normal", "Completed", "Job completed")) == 1
    created = [e for e in seen if e[1] == "SuccessfulCreate"]
    assert {e[2] for e in created} == {f"Created pod: {p['metadata']['name']}" for p in pods}
    store.delete("jobs.batch", "default", "batch")
    assert pods_of(store, "batch") == []


async def test_work_queue_job_completes_when_a_pod_succeeded_and_none_runs(
    platform: Platform,
) -> None:
    store = platform.store
    store.create(job("queue", "sleep 0.2", parallelism=2))
    await finished(store, "queue")
    assert status(store, "queue")["succeeded"] == 2
    assert store.get("jobs.batch", "default", "queue")["spec"].get("completions") is None


async def test_indexed_job_gives_each_pod_its_index(platform: Platform) -> None:
    store = platform.store
    store.create(
        job(
            "idx",
            "echo index=$JOB_COMPLETION_INDEX host=$HOSTNAME",
            completions=3,
            parallelism=3,
            completionMode="Indexed",
        )
    )
    await finished(store, "idx")
    current = status(store, "idx")
    assert current["completedIndexes"] == "0-2" and current["succeeded"] == 3
    kubelet = platform.require(Kubelet)
    for pod in pods_of(store, "idx"):
        meta = pod["metadata"]
        index = meta["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert meta["labels"]["batch.kubernetes.io/job-completion-index"] == index
        assert re.fullmatch(rf"idx-{index}-[a-z0-9]{{5}}", meta["name"])
        assert pod["spec"]["hostname"] == f"idx-{index}"
        env = pod["spec"]["containers"][0]["env"]
        assert env[-1]["name"] == "JOB_COMPLETION_INDEX"
        log = kubelet.read_log("default", meta["name"], None, False, LogOptions())
        assert log.decode().strip() == f"index={index} host=idx-{index}"


async def test_backoff_limit_fails_the_job(platform: Platform) -> None:
    store = platform.store
    store.create(job("bad", "exit 3", backoffLimit=1))
    final = await finished(store, "bad")
    assert final["type"] == "Failed" and final["reason"] == "BackoffLimitExceeded"
    assert final["message"] == "Job has reached the specified backoff limit"
    current = status(store, "bad")
    assert [c["type"] for c in current["conditions"]] == ["FailureTarget", "Failed"]
    assert current["failed"] == 2 and "completionTime" not in current
    assert len(pods_of(store, "bad")) == 2
    assert ("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit") in (
        events_of(store, "bad")
    )


async def test_restart_policy_on_failure_counts_container_restarts(platform: Platform) -> None:
    store = platform.store
    store.create(job("crash", "exit 1", restart="OnFailure", backoffLimit=2))
    final = await finished(store, "crash")
    # One pod failed at most, fewer than backoffLimit: its two restarts made the Job fail.
    assert final["reason"] == "BackoffLimitExceeded"
    assert status(store, "crash")["failed"] == 1
    # The pod, still restarting in place, was stopped and deleted as the Job failed.
    assert pods_of(store, "crash") == []


async def test_active_deadline_stops_the_pods_and_fails_the_job(platform: Platform) -> None:
    store = platform.store
    # Each container takes a second to stop after SIGTERM.
    command = "trap 'sleep 1; exit 1' TERM; sleep 30 & wait"
    store.create(job("slow", command, activeDeadlineSeconds=1, parallelism=2, completions=2))
    target = await wait_until(
        lambda: condition(store, "slow", "FailureTarget"), 30, "FailureTarget"
    )
    assert target["reason"] == "DeadlineExceeded"
    assert target["message"] == "Job was active longer than specified deadline"
    # Failed only once the pods have stopped: meanwhile they are terminating.
    stopping = status(store, "slow")
    assert condition(store, "slow", "Failed") is None and stopping["terminating"] == 2
    final = await finished(store, "slow", timeout=30)
    assert final["reason"] == "DeadlineExceeded"
    current = status(store, "slow")
    assert current["terminating"] == 0 and "active" not in current and current["failed"] == 2
    assert pods_of(store, "slow") == []  # deleted, as on a cluster
    assert ("Warning", "DeadlineExceeded", "Job was active longer than specified deadline") in (
        events_of(store, "slow")
    )


async def test_suspend_deletes_pods_and_resume_starts_again(platform: Platform) -> None:
    store = platform.store
    store.create(job("paused", "sleep 30", suspend=True))
    await wait_until(lambda: condition(store, "paused", "Suspended"), 10, "the Suspended condition")
    suspended = condition(store, "paused", "Suspended")
    assert suspended is not None and suspended["reason"] == "JobSuspended"
    assert suspended["message"] == "Job suspended"
    assert pods_of(store, "paused") == [] and "startTime" not in status(store, "paused")

    def edit(**spec: object) -> None:
        current = store.get("jobs.batch", "default", "paused")
        current["spec"].update(spec)
        store.update(current)

    edit(suspend=False)
    await wait_until(lambda: running(store, "paused"), 10, "a pod after resuming")
    resumed = [c for c in status(store, "paused")["conditions"] if c["type"] == "Suspended"]
    assert resumed[0]["status"] == "False" and resumed[0]["reason"] == "JobResumed"
    assert status(store, "paused")["startTime"]
    edit(suspend=True)
    await wait_until(lambda: condition(store, "paused", "Suspended"), 10, "suspended again")
    await wait_until(lambda: pods_of(store, "paused") == [], 30, "the pods to be deleted")
    # While suspended the template may change; the next pods run the new command.
    current = store.get("jobs.batch", "default", "paused")
    current["spec"]["template"]["spec"]["containers"][0]["command"] = ["sh", "-c", "true"]
    current["spec"]["suspend"] = False
    store.update(current)
    final = await finished(store, "paused")
    assert final["type"] == "Complete"
    # Pods deleted for the suspension are not failures.
    assert "failed" not in status(store, "paused")
    reasons = [e[1] for e in events_of(store, "paused")]
    assert {"Suspended", "Resumed", "SuccessfulDelete"} <= set(reasons)


async def test_ttl_after_finished_deletes_the_job_and_its_pods(platform: Platform) -> None:
    store = platform.store
    store.create(job("short", "true", ttlSecondsAfterFinished=1))
    await finished(store, "short")
    assert len(pods_of(store, "short")) == 1

    def gone() -> bool:
        try:
            store.get("jobs.batch", "default", "short")
        except NotFoundError:
            return True
        return False

    await wait_until(gone, 10, "the Job to be deleted")
    assert pods_of(store, "short") == []


async def test_pod_failure_policy_fail_job(platform: Platform) -> None:
    store = platform.store
    policy = {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]},
            },
        ]
    }
    store.create(job("policy", "exit 42", podFailurePolicy=policy))
    stored = store.get("jobs.batch", "default", "policy")["spec"]["podFailurePolicy"]
    assert stored["rules"][0]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    final = await finished(store, "policy")
    (pod,) = pods_of(store, "policy")
    assert final["reason"] == "PodFailurePolicy"
    assert final["message"] == (
        f"Container main for pod default/{pod['metadata']['name']} failed with exit code 42 "
        "matching FailJob rule at index 1"
    )
    assert status(store, "policy")["failed"] == 1


async def test_pod_failure_policy_ignore_does_not_count(platform: Platform, tmp_path: Path) -> None:
    store = platform.store
    marker = tmp_path / "ran-once"
    policy = {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [5]}}]}
    command = f"if [ -f {marker} ]; then exit 0; fi; touch {marker}; exit 5"
    store.create(job("flaky", command, backoffLimit=0, podFailurePolicy=policy))
    final = await finished(store, "flaky")
    assert final["type"] == "Complete"
    current = status(store, "flaky")
    assert current["succeeded"] == 1 and "failed" not in current
    assert sorted(p["status"]["phase"] for p in pods_of(store, "flaky")) == ["Failed", "Succeeded"]


async def test_pod_conditions_and_lost_containers(platform: Platform) -> None:
    """Pods no kubelet runs (another scheduler): their status is written here as the kubelet
    writes it for an evicted pod and for one lost in a daemon restart."""
    store = platform.store
    other = {"schedulerName": "elsewhere"}
    policy = {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            }
        ]
    }
    store.create(job("evicted", "true", pod=other, backoffLimit=0, podFailurePolicy=policy))
    (first,) = await wait_until(lambda: pods_of(store, "evicted"), 10, "a pod")
    disrupted = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC"}
    set_pod_status(store, first, phase="Failed", conditions=[disrupted])
    await wait_until(lambda: len(pods_of(store, "evicted")) == 2, 10, "a replacement")
    (second,) = [
        p for p in pods_of(store, "evicted") if p["metadata"]["uid"] != first["metadata"]["uid"]
    ]
    set_pod_status(store, second, phase="Succeeded")
    final = await finished(store, "evicted")
    assert final["type"] == "Complete" and "failed" not in status(store, "evicted")

    store.create(job("lost", "true", pod=other, backoffLimit=0))
    (pod,) = await wait_until(lambda: pods_of(store, "lost"), 10, "a pod")
    unknown = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown"}}
    set_pod_status(
        store,
        pod,
        phase="Failed",
        containerStatuses=[{"name": "main", "state": unknown, "restartCount": 0}],
    )
    final = await finished(store, "lost")
    assert final["reason"] == "BackoffLimitExceeded" and status(store, "lost")["failed"] == 1


async def test_backoff_limit_per_index_fails_only_that_index(platform: Platform) -> None:
    store = platform.store
    command = "test $JOB_COMPLETION_INDEX != 1"
    store.create(
        job(
            "per",
            command,
            completions=3,
            parallelism=3,
            completionMode="Indexed",
            backoffLimitPerIndex=1,
        )
    )
    final = await finished(store, "per")
    assert final["reason"] == "FailedIndexes" and final["message"] == "Job has failed indexes"
    current = status(store, "per")
    assert current["failedIndexes"] == "1" and current["completedIndexes"] == "0,2"
    assert current["failed"] == 2
    index_one = [
        p
        for p in pods_of(store, "per")
        if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "1"
    ]
    counts = [
        p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"]
        for p in index_one
    ]
    assert sorted(counts) == ["0", "1"]


async def test_max_failed_indexes(platform: Platform) -> None:
    store = platform.store
    store.create(
        job(
            "most",
            "test $JOB_COMPLETION_INDEX = 0 && sleep 30; exit 1",
            completions=3,
            parallelism=3,
            completionMode="Indexed",
            backoffLimitPerIndex=0,
            maxFailedIndexes=1,
        )
    )
    final = await finished(store, "most", timeout=30)
    assert final["reason"] == "MaxFailedIndexesExceeded"
    assert final["message"] == "Job has exceeded the specified maximal number of failed indexes"
    assert running(store, "most") == []  # index 0 was still running: it was stopped


async def test_success_policy_completes_before_every_index(platform: Platform) -> None:
    store = platform.store
    command = "test $JOB_COMPLETION_INDEX = 0 || sleep 30"
    store.create(
        job(
            "leader",
            command,
            completions=3,
            parallelism=3,
            completionMode="Indexed",
            successPolicy={"rules": [{"succeededIndexes": "0"}]},
        )
    )
    final = await finished(store, "leader", timeout=30)
    assert final["type"] == "Complete" and final["reason"] == "SuccessPolicy"
    assert final["message"] == "Matched rules at index 0"
    current = status(store, "leader")
    assert [c["type"] for c in current["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert current["completedIndexes"] == "0" and current["terminating"] == 0
    assert running(store, "leader") == []


async def test_pod_replacement_policy_failed_waits_for_termination(platform: Platform) -> None:
    store = platform.store
    # The container takes a second to stop after SIGTERM.
    command = "trap 'sleep 1; exit 1' TERM; echo up; sleep 30 & wait"
    store.create(job("patient", command, podReplacementPolicy="Failed"))
    (pod,) = await wait_until(lambda: running(store, "patient"), 10, "a running pod")
    name = pod["metadata"]["name"]
    kubelet = platform.require(Kubelet)

    def trapped() -> bool:
        # "up" is printed once the SIGTERM trap is set
        try:
            return b"up" in kubelet.read_log("default", name, None, False, LogOptions())
        except LogRequestError:
            return False

    await wait_until(trapped, 10, "the trap set")
    store.delete("pods", "default", name)
    await wait_until(lambda: status(store, "patient").get("terminating") == 1, 10, "terminating: 1")
    assert len(pods_of(store, "patient")) == 1  # no replacement while it terminates
    await wait_until(
        lambda: (
            len(running(store, "patient")) == 1
            and running(store, "patient")[0]["metadata"]["uid"] != pod["metadata"]["uid"]
        ),
        15,
        "the replacement",
    )
    current = status(store, "patient")
    assert current["failed"] == 1 and current["terminating"] == 0


async def test_job_managed_by_another_controller_is_left_alone(platform: Platform) -> None:
    store = platform.store
    body = job("external", "true", managedBy="example.com/queue")
    store.create(body)
    controller = JobReconciler(store, Settings(), events.record)
    assert await controller.reconcile("default", "external") is None
    assert pods_of(store, "external") == [] and status(store, "external") == {}


async def test_manual_selector_adopts_matching_orphans(platform: Platform) -> None:
    store = platform.store
    labels = {"app": "adopt-me"}
    orphan = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "orphan", "labels": labels},
        "spec": {
            "schedulerName": "elsewhere",  # no kubelet runs it: its status is written here
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "python:3.12", "command": ["true"]}],
        },
    }
    store.create(orphan)
    body = job("adopter", "true", manualSelector=True, selector={"matchLabels": labels})
    body["spec"]["template"]["metadata"] = {"labels": labels}
    made = store.create(body)

    def adopted() -> bool:
        meta = store.get("pods", "default", "orphan")["metadata"]
        refs = meta.get("ownerReferences") or []
        return any(r["uid"] == made["metadata"]["uid"] and r["controller"] for r in refs)

    await wait_until(adopted, 10, "the orphan to be adopted")
    pod = store.get("pods", "default", "orphan")
    assert "batch.kubernetes.io/job-tracking" in pod["metadata"]["finalizers"]
    set_pod_status(store, pod, phase="Succeeded")
    final = await finished(store, "adopter")
    assert final["type"] == "Complete" and status(store, "adopter")["succeeded"] == 1
    items, _ = store.list("pods", "default", labels)
    assert [p["metadata"]["name"] for p in items] == ["orphan"]  # it ran no pod of its own
