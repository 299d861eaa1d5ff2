"""Pods on the one node, run by the kubelet as real processes: status, logs, volumes,
resources, restarts, deletion and a daemon restart."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _support.daemon import wait_until

from wonderland import workloads
from wonderland.errors import InvalidError
from wonderland.platform import Platform
from wonderland.runtime.kubelet import Kubelet, LogRequestError
from wonderland.runtime.logs import LogOptions
from wonderland.settings import Settings
from wonderland.store import Store
from wonderland.tokens import TokenError, TokenIssuer

PY = sys.executable


class Node:
    """An in-process platform with the workloads plugin (kubelet, storage, jobs)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.store: Store = platform.store
        self.kubelet = platform.require(Kubelet)

    def pod(self, name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
        meta = spec.pop("metadata", {})
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, **meta},
            "spec": {"containers": containers, **spec},
        }
        return self.store.create(body)

    def get(self, name: str) -> dict[str, Any]:
        return self.store.get("pods", "default", name)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def phase(self, name: str) -> str:
        return str(self.status(name).get("phase", ""))

    def container(self, name: str, index: int = 0) -> dict[str, Any]:
        statuses = self.status(name).get("containerStatuses") or [{}]
        return dict(statuses[index])

    def condition(self, name: str, ctype: str) -> dict[str, Any]:
        for c in self.status(name).get("conditions") or []:
            if c["type"] == ctype:
                return dict(c)
        return {}

    def log(self, name: str, container: str | None = None, **options: Any) -> str:
        """The log (empty while the container has not started, where the API answers 400)."""
        try:
            data = self.kubelet.read_log(
                "default", name, container, options.pop("previous", False), LogOptions(**options)
            )
        except LogRequestError as exc:
            if "is waiting to start" in str(exc):
                return ""
            raise
        return data.decode()

    def events(self, name: str) -> list[str]:
        items, _ = self.store.list("events", "default")
        return [
            f"{e['reason']}: {e['message']}" for e in items if e["involvedObject"]["name"] == name
        ]

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.store.apply(obj)[0]

    async def done(self, name: str, timeout: float = 30) -> str:
        return str(
            await wait_until(
                lambda: self.phase(name) in ("Succeeded", "Failed") and self.phase(name),
                timeout,
                f"pod {name} to finish",
            )
        )


async def start_node(home: Path, **settings: Any) -> Node:
    platform = Platform.open(Settings(home=home, backoff_seconds=0.2, **settings))
    workloads.install(platform)
    await platform.start()
    return Node(platform)


async def stop_node(node: Node) -> None:
    await node.platform.stop()
    node.store.close()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    started = await start_node(tmp_path / "home", gpus="2")
    try:
        yield started
    finally:
        await stop_node(started)


def sh(script: str, name: str = "main", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **extra}


async def test_a_pod_runs_to_completion_with_the_kubelets_status(node: Node) -> None:
    node.pod("hello", [sh("echo hello; echo oops >&2; echo $HOSTNAME")], restartPolicy="Never")
    assert await node.done("hello") == "Succeeded"
    status = node.status("hello")
    assert status["podIP"] == "127.0.0.1" and status["hostIP"] == "127.0.0.1"
    assert status["qosClass"] == "BestEffort" and status["startTime"]
    terminated = node.container("hello")["state"]["terminated"]
    assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
    assert node.condition("hello", "Ready")["reason"] == "PodCompleted"
    assert node.condition("hello", "PodScheduled")["status"] == "True"
    assert node.get("hello")["spec"]["nodeName"] == node.kubelet.node.name
    # stdout and stderr are two pipes, as in a container: their lines are not ordered
    assert sorted(node.log("hello").splitlines()) == ["hello", "hello", "oops"]
    stamped = node.log("hello", timestamps=True).splitlines()[0]
    assert stamped.endswith(" hello") and stamped[:4].isdigit() and "T" in stamped[:20]
    assert node.log("hello", tail_lines=1) in ("hello\n", "oops\n")
    reasons = [e.split(":")[0] for e in node.events("hello")]
    assert {"Scheduled", "Created", "Started"} <= set(reasons)


async def test_a_failing_container_reports_its_exit_code_and_fails_the_pod(node: Node) -> None:
    node.pod("bad", [sh("echo broken; exit 3")], restartPolicy="Never")
    assert await node.done("bad") == "Failed"
    terminated = node.container("bad")["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")


async def test_restarts_back_off_and_keep_the_previous_log(node: Node, tmp_path: Path) -> None:
    count = tmp_path / "count"
    script = f"n=$(cat {count} 2>/dev/null || echo 0); echo run $n; echo $((n+1)) > {count}; exit 1"
    node.pod("loop", [sh(script)], restartPolicy="OnFailure")
    await wait_until(lambda: node.container("loop").get("restartCount", 0) >= 2, what="restarts")
    await wait_until(
        lambda: (
            node.container("loop")["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"
            or node.container("loop").get("restartCount", 0) >= 3
        ),
        what="CrashLoopBackOff",
    )
    last = node.container("loop")["lastState"]["terminated"]
    assert last["exitCode"] == 1
    current = node.container("loop")["restartCount"]
    previous = node.log("loop", previous=True)
    assert previous.startswith("run ") and int(previous.split()[1]) >= current - 2
    assert any(
        e.startswith("BackOff: Back-off restarting failed container main")
        for e in node.events("loop")
    )
    node.store.delete("pods", "default", "loop", grace_period=0)


async def test_graceful_deletion_sends_sigterm_then_removes_the_pod(
    node: Node, tmp_path: Path
) -> None:
    marker = tmp_path / "term"
    script = f"trap 'echo term > {marker}; exit 0' TERM; echo up; while true; do sleep 0.05; done"
    node.pod("server", [sh(script)], terminationGracePeriodSeconds=5)
    # the trap is set once "up" is printed (Ready comes as soon as the process started)
    await wait_until(lambda: "up" in node.log("server"), what="the trap set")
    node.store.delete("pods", "default", "server")
    marked = node.get("server")["metadata"]
    assert marked["deletionTimestamp"] and marked["deletionGracePeriodSeconds"] == 5
    await wait_until(lambda: marker.exists(), what="SIGTERM handled")

    def gone() -> bool:
        try:
            node.get("server")
        except Exception:
            return True
        return False

    await wait_until(gone, what="the pod removed")


async def test_sigkill_after_the_grace_period(node: Node) -> None:
    node.pod(
        "stubborn",
        [sh("trap '' TERM; echo up; while true; do sleep 0.05; done")],
        terminationGracePeriodSeconds=1,
    )
    await wait_until(lambda: "up" in node.log("stubborn"), what="the trap set")
    worker = next(w for w in node.kubelet.workers.values() if w.name == "stubborn")
    proc = worker.apps[0].proc
    assert proc is not None
    node.store.delete("pods", "default", "stubborn")
    await wait_until(lambda: proc.returncode is not None, timeout=10, what="killed")
    assert proc.returncode == -signal.SIGKILL


async def test_volumes_appear_at_their_mount_paths(node: Node, tmp_path: Path) -> None:
    node.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg"},
            "data": {"greeting": "hello", "other": "x"},
        }
    )
    node.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "data": {"token": base64.b64encode(b"s3cret").decode()},
        }
    )
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "data.txt").write_text("from the host")
    script = (
        "cat /etc/config/greeting; echo; ls /etc/config; "
        "cat /var/run/creds/api-token; echo; stat -c %a /var/run/creds/..data/api-token; "
        "cat /workspace/model/data.txt; echo; "
        "cat /podinfo/labels; cat /podinfo/name; echo; "
        "echo shared > /scratch/file; cat /scratch/file; "
        "cat /single/greeting.txt; echo; "
        "touch /etc/config/nope 2>/dev/null && echo WRITABLE || echo read-only"
    )
    node.pod(
        "vols",
        [
            sh(
                script,
                volumeMounts=[
                    {"name": "config", "mountPath": "/etc/config"},
                    {"name": "creds", "mountPath": "/var/run/creds"},
                    {"name": "host", "mountPath": "/workspace/model", "readOnly": True},
                    {"name": "info", "mountPath": "/podinfo"},
                    {"name": "scratch", "mountPath": "/scratch"},
                    {"name": "config", "mountPath": "/single/greeting.txt", "subPath": "greeting"},
                ],
            )
        ],
        restartPolicy="Never",
        metadata={"labels": {"app": "vols"}},
        volumes=[
            {
                "name": "config",
                "configMap": {"name": "cfg", "items": [{"key": "greeting", "path": "greeting"}]},
            },
            {
                "name": "creds",
                "secret": {
                    "secretName": "creds",
                    "defaultMode": 0o400,
                    "items": [{"key": "token", "path": "api-token"}],
                },
            },
            {"name": "host", "hostPath": {"path": str(host), "type": "Directory"}},
            {
                "name": "info",
                "projected": {
                    "sources": [
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "path": "labels",
                                        "fieldRef": {"fieldPath": "metadata.labels"},
                                    },
                                    {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                                ]
                            }
                        }
                    ]
                },
            },
            {"name": "scratch", "emptyDir": {"medium": "Memory"}},
        ],
    )
    assert await node.done("vols") == "Succeeded", node.log("vols")
    lines = node.log("vols").splitlines()
    assert lines == [
        "hello",
        "greeting",
        "s3cret",
        "400",
        "from the host",
        'app="vols"',
        "vols",
        "shared",
        "hello",
        "read-only",
    ]
    assert not Path("/workspace/model").exists() and not Path("/etc/config").exists()
    assert not Path("/single").exists()


async def test_configmap_volumes_follow_updates_in_place(node: Node) -> None:
    node.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "live"},
            "data": {"level": "one"},
        }
    )
    node.pod(
        "watcher",
        [
            sh(
                "while true; do cat /cfg/level; echo; sleep 0.1; done",
                volumeMounts=[{"name": "c", "mountPath": "/cfg"}],
            )
        ],
        volumes=[{"name": "c", "configMap": {"name": "live"}}],
    )
    await wait_until(lambda: "one" in node.log("watcher"), what="the first value")
    node.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "live"},
            "data": {"level": "two"},
        }
    )
    await wait_until(lambda: "two" in node.log("watcher"), what="the updated value")
    node.store.delete("pods", "default", "watcher", grace_period=0)


async def test_a_missing_configmap_holds_the_pod_until_it_appears(node: Node) -> None:
    node.pod(
        "waits",
        [sh("cat /cfg/key", volumeMounts=[{"name": "c", "mountPath": "/cfg"}])],
        restartPolicy="Never",
        volumes=[{"name": "c", "configMap": {"name": "later"}}],
    )
    await wait_until(
        lambda: any('configmap "later" not found' in e for e in node.events("waits")),
        what="the FailedMount event",
    )
    assert node.phase("waits") == "Pending"
    assert node.container("waits")["state"]["waiting"]["reason"] == "ContainerCreating"
    failed = [e for e in node.events("waits") if e.startswith("FailedMount")]
    assert (
        failed[0]
        == 'FailedMount: MountVolume.SetUp failed for volume "c" : configmap "later" not found'
    )
    node.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "later"},
            "data": {"key": "here now"},
        }
    )
    assert await node.done("waits") == "Succeeded"
    # a last line without a newline is a whole line to kubectl logs
    assert node.log("waits") == "here now\n"


async def test_missing_env_source_is_create_container_config_error(node: Node) -> None:
    env = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]
    node.pod("cfgerr", [sh("echo $X", env=env)], restartPolicy="Never")
    await wait_until(
        lambda: (
            node.container("cfgerr").get("state", {}).get("waiting", {}).get("reason")
            == "CreateContainerConfigError"
        ),
        what="CreateContainerConfigError",
    )
    message = node.container("cfgerr")["state"]["waiting"]["message"]
    assert message.startswith('secret "nope" not found')
    node.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "nope"},
            "stringData": {"k": "v"},
        }
    )
    assert await node.done("cfgerr") == "Succeeded"


async def test_a_relative_mount_path_fails_the_container_as_containerd_does(node: Node) -> None:
    node.pod(
        "relative",
        [sh("true", volumeMounts=[{"name": "d", "mountPath": "data"}])],
        restartPolicy="Never",
        volumes=[{"name": "d", "emptyDir": {}}],
    )
    await wait_until(
        lambda: (
            node.container("relative").get("state", {}).get("waiting", {}).get("reason")
            == "CreateContainerError"
        ),
        what="CreateContainerError",
    )
    assert (
        'mount destination "data" is not absolute'
        in node.container("relative")["state"]["waiting"]["message"]
    )


def test_unsupported_volume_types_and_bad_mounts_are_refused(node: Node) -> None:
    with pytest.raises(InvalidError, match="volume type 'nfs' is not supported"):
        node.pod(
            "nfs",
            [sh("true", volumeMounts=[{"name": "n", "mountPath": "/n"}])],
            volumes=[{"name": "n", "nfs": {"server": "x", "path": "/"}}],
        )
    with pytest.raises(InvalidError, match=r'volumeMounts\[0\]\.name: Not found: "missing"'):
        node.pod("nomount", [sh("true", volumeMounts=[{"name": "missing", "mountPath": "/m"}])])
    with pytest.raises(InvalidError, match="may not specify more than 1 volume type"):
        node.pod(
            "two", [sh("true")], volumes=[{"name": "v", "emptyDir": {}, "configMap": {"name": "x"}}]
        )


async def test_a_projected_service_account_token_is_issued_for_its_audience(
    node: Node,
) -> None:
    node.pod(
        "tok",
        [
            sh(
                "cat /var/run/secrets/tokens/api",
                volumeMounts=[{"name": "t", "mountPath": "/var/run/secrets/tokens"}],
            )
        ],
        restartPolicy="Never",
        serviceAccountName="trainer",
        volumes=[
            {
                "name": "t",
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "audience": "example.com/status",
                                "expirationSeconds": 600,
                                "path": "api",
                            }
                        }
                    ]
                },
            }
        ],
    )
    assert await node.done("tok") == "Succeeded"
    token = node.log("tok").strip()
    issuer = node.platform.require(TokenIssuer)  # type: ignore[type-abstract]
    claims = issuer.verify(token, "example.com/status")
    assert (claims.namespace, claims.service_account, claims.pod_name) == (
        "default",
        "trainer",
        "tok",
    )
    assert claims.pod_uid == node.get("tok")["metadata"]["uid"]
    with pytest.raises(TokenError, match=r"Audience doesn.t match|Invalid audience"):
        issuer.verify(token, "another-audience")
    with pytest.raises(InvalidError, match="may not specify a duration less than 10 minutes"):
        node.pod(
            "short",
            [sh("true")],
            volumes=[
                {
                    "name": "t",
                    "projected": {
                        "sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 60}}]
                    },
                }
            ],
        )


async def test_gpus_are_scheduled_and_a_pod_that_does_not_fit_waits(node: Node) -> None:
    gpu = {"limits": {"nvidia.com/gpu": "1"}}
    forever = "echo CUDA=$CUDA_VISIBLE_DEVICES; while true; do sleep 0.05; done"
    node.pod("gpu-a", [sh(forever, resources=gpu)])
    node.pod("gpu-b", [sh(forever, resources=gpu)])
    await wait_until(
        lambda: "CUDA=" in node.log("gpu-a") and "CUDA=" in node.log("gpu-b"), what="both running"
    )
    devices = {node.log("gpu-a").strip(), node.log("gpu-b").strip()}
    assert devices == {"CUDA=0", "CUDA=1"}
    node.pod("gpu-c", [sh("echo CUDA=$CUDA_VISIBLE_DEVICES", resources=gpu)], restartPolicy="Never")
    await wait_until(
        lambda: node.condition("gpu-c", "PodScheduled").get("reason") == "Unschedulable",
        what="unschedulable",
    )
    cond = node.condition("gpu-c", "PodScheduled")
    assert cond["status"] == "False"
    assert cond["message"] == "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    assert node.phase("gpu-c") == "Pending"
    assert (
        "FailedScheduling: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
        in node.events("gpu-c")
    )
    freed = node.log("gpu-a").strip()
    node.store.delete("pods", "default", "gpu-a", grace_period=1)
    assert await node.done("gpu-c") == "Succeeded"
    assert node.log("gpu-c").strip() == freed
    node.pod("cpu-only", [sh("echo [$CUDA_VISIBLE_DEVICES]")], restartPolicy="Never")
    await node.done("cpu-only")
    assert node.log("cpu-only").strip() == "[]"
    node.store.delete("pods", "default", "gpu-b", grace_period=0)


async def test_requests_beyond_the_node_stay_pending(node: Node) -> None:
    huge = {"requests": {"cpu": "500", "memory": "1Ti"}}
    node.pod("huge", [sh("true", resources=huge)], restartPolicy="Never")
    await wait_until(
        lambda: node.condition("huge", "PodScheduled").get("reason") == "Unschedulable",
        what="unschedulable",
    )
    assert node.condition("huge", "PodScheduled")["message"] == (
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."
    )


def test_gpu_requests_need_equal_limits(node: Node) -> None:
    with pytest.raises(InvalidError, match="Limit must be set for non overcommitable resources"):
        node.pod("g", [sh("true", resources={"requests": {"nvidia.com/gpu": "1"}})])
    with pytest.raises(InvalidError, match=r"must be equal to nvidia\.com/gpu limit of 1"):
        node.pod(
            "g",
            [
                sh(
                    "true",
                    resources={
                        "requests": {"nvidia.com/gpu": "2"},
                        "limits": {"nvidia.com/gpu": "1"},
                    },
                )
            ],
        )


async def test_a_memory_limit_overrun_is_oomkilled(node: Node) -> None:
    eat = f"{PY} -c \"x = bytearray(400 * 1024 * 1024); print('survived')\""
    node.pod("hungry", [sh(eat, resources={"limits": {"memory": "64Mi"}})], restartPolicy="Never")
    assert await node.done("hungry") == "Failed"
    terminated = node.container("hungry")["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    assert node.status("hungry")["qosClass"] == "Burstable"


async def test_the_memory_watchdog_enforces_limits_without_cgroups(tmp_path: Path) -> None:
    node = await start_node(tmp_path / "home", cgroups="off")
    try:
        eat = f"{PY} -c \"import time; x = bytearray(300 * 1024 * 1024); time.sleep(5); print('survived')\""
        node.pod(
            "hungry", [sh(eat, resources={"limits": {"memory": "64Mi"}})], restartPolicy="Never"
        )
        assert await node.done("hungry") == "Failed"
        terminated = node.container("hungry")["state"]["terminated"]
        assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
        assert "survived" not in node.log("hungry")
    finally:
        await stop_node(node)


async def test_a_cpu_limit_caps_the_cpu_time(node: Node) -> None:
    if node.kubelet.cgroups.name == "none":
        pytest.skip("CPU limits need a writable cgroup; this host gives none")
    burn = f'{PY} -c "import time, os; end = time.time() + 1.0\nwhile time.time() < end: pass\nprint(os.times().user)"'
    node.pod("busy", [sh(burn, resources={"limits": {"cpu": "200m"}})], restartPolicy="Never")
    assert await node.done("busy") == "Succeeded"
    used = float(node.log("busy").strip())
    assert used < 0.5, f"a 200m limit let the program use {used:.2f}s of CPU in 1s"


async def test_init_containers_and_native_sidecars_start_in_order(
    node: Node, tmp_path: Path
) -> None:
    port_file = tmp_path / "port"
    sidecar = (
        f"{PY} -c \"import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
        f"open('{port_file}', 'w').write(str(s.getsockname()[1])); import time; time.sleep(60)\""
    )
    node.pod(
        "ordered",
        [
            sh(
                f"cat /work/seed; test -s {port_file} && echo sidecar-was-up",
                volumeMounts=[{"name": "w", "mountPath": "/work"}],
            )
        ],
        restartPolicy="Never",
        initContainers=[
            sh(
                "echo seeded > /work/seed",
                name="seed",
                volumeMounts=[{"name": "w", "mountPath": "/work"}],
            ),
            sh(
                sidecar,
                name="helper",
                restartPolicy="Always",
                startupProbe={
                    "exec": {"command": ["test", "-s", str(port_file)]},
                    "periodSeconds": 1,
                },
            ),
        ],
        volumes=[{"name": "w", "emptyDir": {}}],
    )
    assert await node.done("ordered") == "Succeeded"
    assert node.log("ordered", "main").splitlines() == ["seeded", "sidecar-was-up"]
    inits = node.status("ordered")["initContainerStatuses"]
    assert inits[0]["state"]["terminated"]["reason"] == "Completed"
    assert "terminated" in inits[1]["state"]  # the sidecar stopped after the main container


async def test_active_deadline_fails_the_pod(node: Node) -> None:
    node.pod("slow", [sh("sleep 30")], restartPolicy="Never", activeDeadlineSeconds=1)
    assert await node.done("slow") == "Failed"
    status = node.status("slow")
    assert status["reason"] == "DeadlineExceeded"
    assert status["message"] == "Pod was active on the node longer than the specified deadline"


async def test_empty_dir_size_limit_evicts_the_pod(node: Node) -> None:
    node.pod(
        "filler",
        [
            sh(
                "head -c 3000000 /dev/zero > /cache/blob; sleep 30",
                volumeMounts=[{"name": "c", "mountPath": "/cache"}],
            )
        ],
        restartPolicy="Never",
        volumes=[{"name": "c", "emptyDir": {"sizeLimit": "1Mi"}}],
    )
    assert await node.done("filler", timeout=30) == "Failed"
    status = node.status("filler")
    assert status["reason"] == "Evicted"
    assert status["message"].startswith('Usage of EmptyDir volume "c" exceeds the limit "1Mi".')


async def test_a_persistent_volume_claim_binds_and_keeps_data_across_pods(node: Node) -> None:
    node.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )
    claim = await wait_until(
        lambda: (
            (node.store.get("persistentvolumeclaims", "default", "data").get("status") or {}).get(
                "phase"
            )
            == "Bound"
            and node.store.get("persistentvolumeclaims", "default", "data")
        ),
        what="the claim bound",
    )
    assert claim["spec"]["storageClassName"] == "standard"
    volume = node.store.get("persistentvolumes", None, claim["spec"]["volumeName"])
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    folder = Path(volume["spec"]["hostPath"]["path"])
    assert folder.parent == node.platform.state_dir / "volumes"
    mount = [{"name": "d", "mountPath": "/data"}]
    node.pod(
        "writer",
        [sh("echo kept > /data/x", volumeMounts=mount)],
        restartPolicy="Never",
        volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
    )
    assert await node.done("writer") == "Succeeded"
    node.pod(
        "reader",
        [sh("cat /data/x", volumeMounts=mount)],
        restartPolicy="Never",
        volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
    )
    assert await node.done("reader") == "Succeeded"
    assert node.log("reader") == "kept\n"
    assert (folder / "x").read_text() == "kept\n"
    node.store.delete("persistentvolumeclaims", "default", "data")

    def released() -> bool:
        try:
            node.store.get("persistentvolumes", None, volume["metadata"]["name"])
        except Exception:
            return not folder.exists()
        return False

    await wait_until(released, what="the volume deleted with its claim")


async def test_a_claim_in_use_stays_until_its_pod_is_gone(node: Node) -> None:
    node.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "busy"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Mi"}},
            },
        }
    )
    node.pod(
        "user",
        [sh("sleep 30", volumeMounts=[{"name": "d", "mountPath": "/d"}])],
        volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "busy"}}],
    )
    await wait_until(lambda: node.phase("user") == "Running", what="running")
    node.store.delete("persistentvolumeclaims", "default", "busy")
    # nothing to wait on for "the claim stays": give a wrong removal its chance, then look
    await asyncio.sleep(0.3)
    claim = node.store.get("persistentvolumeclaims", "default", "busy")
    assert (
        claim["metadata"]["deletionTimestamp"]
        and "kubernetes.io/pvc-protection" in claim["metadata"]["finalizers"]
    )
    node.store.delete("pods", "default", "user", grace_period=0)

    def gone() -> bool:
        try:
            node.store.get("persistentvolumeclaims", "default", "busy")
        except Exception:
            return True
        return False

    await wait_until(gone, what="the claim deleted once unused")


async def test_a_pod_waits_for_its_claim(node: Node) -> None:
    node.pod(
        "needs",
        [sh("true", volumeMounts=[{"name": "d", "mountPath": "/d"}])],
        restartPolicy="Never",
        volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "later"}}],
    )
    await wait_until(
        lambda: node.condition("needs", "PodScheduled").get("reason") == "Unschedulable",
        what="unschedulable",
    )
    assert (
        node.condition("needs", "PodScheduled")["message"]
        == '0/1 nodes are available: persistentvolumeclaim "later" not found.'
    )
    node.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "later"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Mi"}},
            },
        }
    )
    assert await node.done("needs") == "Succeeded"


async def test_a_daemon_restart_restarts_or_fails_pods_as_a_node_reboot(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = await start_node(home)
    try:
        first.pod("always", [sh("echo started; while true; do sleep 0.05; done")])
        first.pod("never", [sh("while true; do sleep 0.05; done")], restartPolicy="Never")
        await wait_until(
            lambda: first.phase("always") == "Running" and first.phase("never") == "Running",
            what="both running",
        )
    finally:
        await stop_node(first)
    second = await start_node(home)
    try:
        assert await second.done("never") == "Failed"
        lost = second.container("never")["state"]["terminated"]
        assert lost["reason"] == "ContainerStatusUnknown" and lost["exitCode"] == 137
        await wait_until(
            lambda: (
                second.phase("always") == "Running"
                and second.container("always").get("restartCount") == 1
            ),
            what="restarted in place",
        )
        await wait_until(lambda: "started" in second.log("always"), what="running again")
    finally:
        await stop_node(second)


async def test_the_node_is_registered_with_its_capacity(node: Node) -> None:
    obj = node.store.get("nodes", None, node.kubelet.node.name)
    status = obj["status"]
    assert status["capacity"]["nvidia.com/gpu"] == "2"
    assert status["capacity"]["cpu"] == str(os.cpu_count())
    assert status["allocatable"]["pods"] == "110"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
    assert obj["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    # kubectl cordon: no new pod is scheduled
    obj["spec"]["unschedulable"] = True
    node.store.update(obj)
    await wait_until(
        lambda: node.kubelet.scheduler.unschedulable, what="the kubelet sees the cordon"
    )
    node.pod("cordoned", [sh("true")], restartPolicy="Never")
    await wait_until(
        lambda: node.condition("cordoned", "PodScheduled").get("reason") == "Unschedulable",
        what="unschedulable",
    )
    assert (
        node.condition("cordoned", "PodScheduled")["message"]
        == "0/1 nodes are available: 1 node(s) were unschedulable."
    )


async def test_without_mount_namespaces_only_pods_with_mounts_wait(node: Node) -> None:
    from wonderland.runtime.sandbox import SandboxSupport

    why = "unprivileged user namespaces are disabled on this host (test); enable them with sysctl"
    node.kubelet.sandbox = SandboxSupport(False, True, why)
    node.pod(
        "mounts",
        [sh("true", volumeMounts=[{"name": "d", "mountPath": "/d"}])],
        restartPolicy="Never",
        volumes=[{"name": "d", "emptyDir": {}}],
    )
    node.pod("plain", [sh("echo fine")], restartPolicy="Never")
    assert await node.done("plain") == "Succeeded"
    await wait_until(
        lambda: any("needs a private mount namespace" in e for e in node.events("mounts")),
        what="the reason in an event",
    )
    assert node.phase("mounts") == "Pending"
    assert any(why in e for e in node.events("mounts"))


SANDBOX_AS_NOBODY = r"""
import ctypes, os, sys
from wonderland.runtime import sandbox  # imported while the files are still readable
os.setgid(65534); os.setuid(65534)
ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # dumpable again, as a process that never was root
pid = os.fork()
if pid == 0:
    try:
        sandbox.enter(sandbox.MountPlan((sandbox.Mount(sys.argv[1], "/workspace/model", True),), sys.argv[2]))
    except OSError as exc:
        print("UNAVAILABLE" if "unshare" in str(exc) else "FAILED", exc, flush=True)
        os._exit(0)
    os.execvp("sh", ["sh", "-c", "cat /workspace/model/weights; id -u; touch /workspace/model/x 2>&1; exit 0"])
_, code = os.waitpid(pid, 0)
print("EXIT", code)
"""


def test_an_unprivileged_daemon_mounts_through_a_user_namespace() -> None:
    if os.geteuid() != 0:
        pytest.skip("switching to an unprivileged user needs root")
    import shutil
    import subprocess
    import tempfile

    # a folder the unprivileged user can reach (pytest's are private to root)
    tmp_path = Path(tempfile.mkdtemp(prefix="wonderland-userns-"))
    tmp_path.chmod(0o755)
    try:
        _run_as_nobody(tmp_path, subprocess)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _run_as_nobody(tmp_path: Path, subprocess: Any) -> None:
    volume = tmp_path / "vol"
    volume.mkdir()
    (volume / "weights").write_text("w1\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for path in (tmp_path, volume, scratch):
        path.chmod(0o755)
    result = subprocess.run(
        [PY, "-c", SANDBOX_AS_NOBODY, str(volume), str(scratch)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(workloads.__file__).parents[2])},
    )
    assert result.returncode == 0, result.stderr
    if result.stdout.startswith("UNAVAILABLE"):
        pytest.skip(f"this host forbids user namespaces: {result.stdout}")
    lines = result.stdout.splitlines()
    assert lines[0] == "w1" and lines[1] == "65534"
    assert "Read-only file system" in lines[2] and lines[-1] == "EXIT 0"
    assert not Path("/workspace/model").exists()


def test_numeric_quantities_are_stored_as_strings() -> None:
    """As the API server serialises a Quantity: typed clients (kubernetes 36+) refuse numbers."""
    from wonderland.workloads.admission import default_pod_spec

    spec = {"containers": [{"name": "c", "resources": {"limits": {"cpu": 1.0, "memory": 0.5}}}]}
    default_pod_spec(spec)
    resources = spec["containers"][0]["resources"]  # type: ignore[index]
    assert resources == {
        "limits": {"cpu": "1", "memory": "500m"},
        "requests": {"cpu": "1", "memory": "500m"},
    }
