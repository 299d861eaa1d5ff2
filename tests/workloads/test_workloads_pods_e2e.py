"""Pods and the node through kubectl 1.32 and the official ``kubernetes`` client against a
running `wonderland up`: get (selectors, wide, watch), describe, logs (follow, tail,
previous, timestamps), delete (the owner replaces the pod), nodes and top."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _support.daemon import WonderlandDaemon, daemon_env, free_port, running_daemon, wait_for
from _support.kube import Kubectl, kubectl_for

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: ticker, labels: {app: tick, tier: web}}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"]
    resources: {limits: {memory: 64Mi, cpu: 500m}}
  - name: side
    image: busybox
    command: ["sh", "-c", "echo side up; while true; do sleep 1; done"]
---
apiVersion: v1
kind: Pod
metadata: {name: crasher, labels: {app: crash}}
spec:
  restartPolicy: OnFailure
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo attempt at $(date +%s%N); exit 2"]
---
apiVersion: v1
kind: Pod
metadata: {name: gpu-1, labels: {app: gpu}}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo devices=$CUDA_VISIBLE_DEVICES; sleep 60"]
    resources: {limits: {nvidia.com/gpu: 1}}
---
apiVersion: v1
kind: Pod
metadata: {name: gpu-2, labels: {app: gpu}}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo devices=$CUDA_VISIBLE_DEVICES; sleep 60"]
    resources: {limits: {nvidia.com/gpu: 1}}
"""

KSVC = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello}
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/min-scale: "1"}
    spec:
      containers:
      - image: runtime-app
        command: ["python", "{app}"]
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WonderlandDaemon]:
    tmp = tmp_path_factory.mktemp("pods-e2e")
    env = daemon_env(
        tmp, gateway_port=free_port(), WONDERLAND_GPUS="1", WONDERLAND_BACKOFF_SECONDS="0.5"
    )
    started = WonderlandDaemon(tmp / "home", env, tmp / "daemon.log")
    with running_daemon(started):
        yield started


@pytest.fixture(scope="module")
def kubectl(daemon: WonderlandDaemon) -> Kubectl:
    return kubectl_for(daemon)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def phase(kubectl: Kubectl, pod: str) -> str:
    return kubectl("get", "pod", pod, "-o", "jsonpath={.status.phase}").stdout


@pytest.mark.e2e
def test_kubectl_sees_pods_and_their_logs(daemon: WonderlandDaemon, kubectl: Kubectl) -> None:
    assert "pod/ticker created" in ok(kubectl("apply", "-f", "-", stdin=PODS))
    wait_for(lambda: phase(kubectl, "ticker") == "Running", 30, "ticker running", log=daemon.log)
    wait_for(lambda: phase(kubectl, "gpu-1") == "Running", 30, "gpu-1 running", log=daemon.log)
    table = ok(kubectl("get", "pods"))
    header = table.splitlines()[0].split()
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
    assert rows["ticker"][1:3] == ["2/2", "Running"]
    assert rows["gpu-2"][1:3] == ["0/1", "Pending"]
    wide = ok(kubectl("get", "pods", "-o", "wide", "ticker")).splitlines()
    assert wide[0].split()[5:7] == ["IP", "NODE"] and "127.0.0.1" in wide[1]
    # equality and set-based selectors
    assert ok(kubectl("get", "pods", "-l", "app in (tick,gpu)", "-o", "name")).split() == [
        "pod/gpu-1",
        "pod/gpu-2",
        "pod/ticker",
    ]
    assert ok(kubectl("get", "pods", "-l", "app notin (tick,crash)", "-o", "name")).split() == [
        "pod/gpu-1",
        "pod/gpu-2",
    ]
    assert "pod/ticker" not in ok(kubectl("get", "pods", "-l", "!tier", "-o", "name"))
    assert ok(kubectl("get", "pods", "-l", "app=tick,tier=web", "-o", "name")).split() == [
        "pod/ticker"
    ]
    # logs: default container, -c, --tail, --timestamps, -f
    logs = kubectl("logs", "ticker", "--tail", "2")
    assert logs.returncode == 0 and len(logs.stdout.splitlines()) == 2
    assert logs.stdout.startswith("tick ") and 'Defaulted container "main"' in logs.stderr
    assert ok(kubectl("logs", "ticker", "-c", "side")) == "side up\n"
    stamped = ok(kubectl("logs", "ticker", "-c", "main", "--tail", "1", "--timestamps"))
    assert stamped.split(" ", 1)[0].endswith("Z") and " tick " in f" {stamped.split(' ', 1)[1]}"
    follow = subprocess.Popen(
        [
            "kubectl",
            "--kubeconfig",
            str(daemon.home / "kubeconfig"),
            "logs",
            "-f",
            "ticker",
            "-c",
            "main",
            "--tail",
            "1",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        first = int(follow.stdout.readline().split()[1])
        later = [int(follow.stdout.readline().split()[1]) for _ in range(3)]
        assert later == [first + 1, first + 2, first + 3]  # streamed as they are written
    finally:
        follow.kill()
        follow.wait()
    # the GPU pod that does not fit
    described = ok(kubectl("describe", "pod", "gpu-2"))
    assert "FailedScheduling" in described
    assert "0/1 nodes are available: 1 Insufficient nvidia.com/gpu." in described
    assert "devices=0" in ok(kubectl("logs", "gpu-1"))
    # a crash-looping container: restarts, the previous instance's log
    wait_for(
        lambda: (
            int(
                kubectl(
                    "get",
                    "pod",
                    "crasher",
                    "-o",
                    "jsonpath={.status.containerStatuses[0].restartCount}",
                ).stdout
                or 0
            )
            >= 2
        ),
        30,
        "restarts",
        log=daemon.log,
    )
    previous = ok(kubectl("logs", "crasher", "--previous"))
    assert previous.startswith("attempt at ")
    state = json.loads(ok(kubectl("get", "pod", "crasher", "-o", "json")))["status"]
    last = state["containerStatuses"][0]["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (2, "Error")
    wrong = kubectl("logs", "ticker", "-c", "nope")
    assert wrong.returncode == 1 and "container nope is not valid for pod ticker" in wrong.stderr


@pytest.mark.e2e
def test_kubectl_watch_and_delete(daemon: WonderlandDaemon, kubectl: Kubectl) -> None:
    ok(
        kubectl(
            "run",
            "watched",
            "--image=busybox",
            "--restart=Never",
            "--command",
            "--",
            "sh",
            "-c",
            "sleep 30",
        )
    )
    wait_for(lambda: phase(kubectl, "watched") == "Running", 30, "running", log=daemon.log)
    lines: list[str] = []
    watch = subprocess.Popen(
        [
            "kubectl",
            "--kubeconfig",
            str(daemon.home / "kubeconfig"),
            "get",
            "pods",
            "watched",
            "-w",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )

    def read() -> None:
        assert watch.stdout is not None
        for line in watch.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: len(lines) >= 2, 20, "the watch header and row")
        deleted = kubectl("delete", "pod", "watched", "--grace-period=1")
        assert deleted.returncode == 0 and 'pod "watched" deleted' in deleted.stdout
        wait_for(
            lambda: any("Terminating" in line or "Error" in line for line in lines),
            20,
            "the watch to show it",
        )
    finally:
        watch.kill()
        watch.wait()
    gone = kubectl("get", "pod", "watched")
    assert gone.returncode == 1 and 'pods "watched" not found' in gone.stderr


@pytest.mark.e2e
def test_a_deleted_replica_pod_is_replaced(
    daemon: WonderlandDaemon, kubectl: Kubectl, tmp_path: Path
) -> None:
    app = Path(__file__).parent.parent / "runtime" / "runtime_app.py"
    ok(kubectl("apply", "-f", "-", stdin=KSVC.replace("{app}", str(app))))
    selector = "serving.knative.dev/service=hello"

    def pods() -> list[str]:
        return ok(kubectl("get", "pods", "-l", selector, "-o", "name")).split()

    first = wait_for(pods, 60, "the replica pod", log=daemon.log)[0]
    pod = json.loads(ok(kubectl("get", first, "-o", "json")))
    labels = pod["metadata"]["labels"]
    assert labels["serving.knative.dev/revision"] == "hello-00001"
    assert labels["serving.knative.dev/configuration"] == "hello"
    assert pod["spec"]["containers"][0]["name"] == "user-container"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Revision"
    wait_for(
        lambda: "listening on" in kubectl("logs", first, "-c", "user-container").stdout,
        30,
        "the app's log",
    )
    ok(kubectl("delete", first))
    replaced = wait_for(
        lambda: [p for p in pods() if p != first], 60, "a new replica", log=daemon.log
    )
    assert replaced and replaced[0].startswith("pod/hello-00001-deployment-")
    host = {"Host": "hello.default.127.0.0.1.sslip.io"}
    wait_for(
        lambda: httpx.get(daemon.gateway, headers=host, timeout=10).status_code == 200,
        60,
        "served again",
    )


@pytest.mark.e2e
def test_nodes_and_top(daemon: WonderlandDaemon, kubectl: Kubectl) -> None:
    nodes = ok(kubectl("get", "nodes")).splitlines()
    assert nodes[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes[1].split()[1:3] == ["Ready", "control-plane"]
    node = json.loads(ok(kubectl("get", "nodes", "-o", "json")))["items"][0]
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "1"
    assert node["status"]["allocatable"]["pods"] == "110"
    top = ok(kubectl("top", "nodes")).splitlines()
    assert top[0].split()[:3] == ["NAME", "CPU(cores)", "CPU(%)"]
    burner = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "burner"},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "python",
                    "command": ["python3", "-c", "while True: pass"],
                    "resources": {"limits": {"cpu": "300m"}},
                }
            ]
        },
    }
    ok(kubectl("apply", "-f", "-", stdin=json.dumps(burner)))
    wait_for(lambda: phase(kubectl, "burner") == "Running", 30, "burner running", log=daemon.log)

    def measured() -> tuple[list[str], int] | None:
        top = kubectl("top", "pods", "burner")
        lines = top.stdout.splitlines()
        if top.returncode != 0 or len(lines) < 2:  # no sample of the burner yet
            return None
        used = int(lines[1].split()[1].rstrip("m"))
        return (lines, used) if used >= 10 else None

    pods, cpu = wait_for(measured, 30, "kubectl top to measure the burner", log=daemon.log)
    # Held to its 300m quota; how much of it the burner gets depends on what else shares
    # the two cores, so below the quota only "measured, not zero" is certain.
    assert 10 <= cpu <= 400, pods
    ok(kubectl("delete", "pod", "burner", "--grace-period=0", "--force"))


@pytest.mark.e2e
def test_the_kubernetes_client_lists_and_follows(
    daemon: WonderlandDaemon, kubectl: Kubectl
) -> None:
    from kubernetes import client, config

    config.load_kube_config(str(daemon.home / "kubeconfig"))
    v1 = client.CoreV1Api()
    ok(
        kubectl(
            "run",
            "counter",
            "--image=busybox",
            "--restart=Never",
            "--command",
            "--",
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo n$i; sleep 0.2; done",
        )
    )
    listed = v1.list_namespaced_pod("default", label_selector="run in (counter)")
    assert [p.metadata.name for p in listed.items] == ["counter"]
    wait_for(lambda: phase(kubectl, "counter") in ("Running", "Succeeded"), 30, "counter running")
    stream = v1.read_namespaced_pod_log("counter", "default", follow=True, _preload_content=False)
    lines = [line.decode() for line in stream.stream()]
    stream.release_conn()
    assert "".join(lines).split() == ["n1", "n2", "n3", "n4", "n5"]  # until the container ended
    pod = v1.read_namespaced_pod("counter", "default")
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.reason == "Completed"


@pytest.mark.e2e
def test_the_kubernetes_client_reads_numeric_quantities_back_as_strings(
    daemon: WonderlandDaemon, kubectl: Kubectl
) -> None:
    """kubernetes 36+ types quantities as strings: a Job or CronJob written with numbers
    (as the Kubeflow SDK writes resources_per_node) reads back typed, as from a cluster."""
    from kubernetes import client, config

    config.load_kube_config(str(daemon.home / "kubeconfig"))
    resources = {"requests": {"cpu": 0.25, "memory": 100000000}, "limits": {"cpu": 1}}
    pod = {
        "restartPolicy": "Never",
        "containers": [{"name": "c", "command": ["true"], "resources": resources}],
    }
    # no MLflow run: its pod need not wait for the tracking server to start
    off = {"tracking.wonderland.dev/mlflow": "off"}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "qty", "annotations": off}}
    job["spec"] = {"template": {"spec": pod}}
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "qty-cron"}}
    cron["spec"] = {"schedule": "0 0 1 1 *", "jobTemplate": {"spec": {"template": {"spec": pod}}}}
    for obj in (job, cron):
        ok(kubectl("apply", "-f", "-", stdin=json.dumps(obj)))
    batch = client.BatchV1Api()
    expected = {"requests": {"cpu": "250m", "memory": "100000000"}, "limits": {"cpu": "1"}}
    read = batch.read_namespaced_job("qty", "default").spec.template.spec.containers[0]
    assert {"requests": read.resources.requests, "limits": read.resources.limits} == expected
    cron_job = batch.read_namespaced_cron_job("qty-cron", "default").spec.job_template.spec
    read = cron_job.template.spec.containers[0]
    assert {"requests": read.resources.requests, "limits": read.resources.limits} == expected
    core = client.CoreV1Api()
    pods = wait_for(
        lambda: core.list_namespaced_pod("default", label_selector="job-name=qty").items,
        30,
        "the Job's pod",
    )
    assert [p.spec.containers[0].resources.limits for p in pods] == [{"cpu": "1"}]
    ok(kubectl("delete", "job", "qty", "--wait=false"))
    ok(kubectl("delete", "cronjob", "qty-cron", "--wait=false"))


@pytest.mark.e2e
def test_many_pods_come_and_go(daemon: WonderlandDaemon, kubectl: Kubectl) -> None:
    # The daemon's event loop watches every pod's pipes and pidfd: deleting finished pods
    # (and collecting their objects) must leave it running.
    for round_ in range(3):
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": f"burst-{round_}"},
            "spec": {
                "completions": 20,
                "parallelism": 4,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo ok"]}
                        ],
                    }
                },
            },
        }
        ok(kubectl("apply", "-f", "-", stdin=json.dumps(job)))
        ok(kubectl("wait", "--for=condition=complete", f"job/burst-{round_}", "--timeout=60s"))
        ok(kubectl("delete", "job", f"burst-{round_}"))
    assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log.read_text()[-3000:]
