"""A revision's replicas as pods: the runtime contract, probes, failures, images, companions."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support.daemon import wait_until

import wonderland
from wonderland import workloads
from wonderland.errors import NotFoundError
from wonderland.platform import Platform
from wonderland.runtime import companions
from wonderland.runtime.env import PodInfo, container_env
from wonderland.runtime.images import ImageResolver
from wonderland.runtime.kubelet import Kubelet
from wonderland.runtime.logs import LogOptions
from wonderland.runtime.supervisor import ReplicaTemplate, Supervisor
from wonderland.settings import Settings

APP = str(Path(__file__).with_name("runtime_app.py"))


class Runtime:
    def __init__(self, platform: Platform, supervisor: Supervisor) -> None:
        self.platform = platform
        self.supervisor = supervisor
        self.kubelet = platform.require(Kubelet)

    def proc(self, key: str, index: int = 0) -> asyncio.subprocess.Process | None:
        replica = self.supervisor.replicas(key)[index]
        worker = self.kubelet.workers.get(replica.uid)
        return worker.apps[0].proc if worker is not None else None

    def pod(self, key: str, index: int = 0) -> dict[str, Any]:
        replica = self.supervisor.replicas(key)[index]
        return self.platform.store.get("pods", "default", replica.name)

    def restarts(self, key: str) -> int:
        statuses = (self.pod(key).get("status") or {}).get("containerStatuses") or [{}]
        return int(statuses[0].get("restartCount") or 0)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    platform = Platform.open(Settings(home=tmp_path / "home", backoff_seconds=0.2))
    workloads.install(platform)
    kubelet = platform.require(Kubelet)
    kubelet.env["HTTP_PROXY"] = kubelet.env["http_proxy"] = "http://127.0.0.1:1"
    kubelet.env["NO_PROXY"] = "127.0.0.1,localhost"
    supervisor = Supervisor(kubelet, platform.store)
    await platform.start()
    try:
        yield Runtime(platform, supervisor)
    finally:
        await platform.stop()
        platform.store.close()


def template(**kw: Any) -> ReplicaTemplate:
    container = {"image": "runtime-test", "command": [sys.executable, APP], **kw.pop("c", {})}
    base: dict[str, Any] = {
        "namespace": "default",
        "revision": "hello-00001",
        "service": "hello",
        "configuration": "hello",
        "container": container,
        "grace_period": 5.0,
        "progress_deadline": 30.0,
    }
    base.update(kw)
    return ReplicaTemplate(**base)


async def test_runtime_contract_env_cwd_stdin_and_logs(runtime: Runtime, tmp_path: Path) -> None:
    store = runtime.platform.store
    store.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg"},
            "data": {"GREETING": "hi", "LEVEL": "3"},
        }
    )
    store.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pw"},
            "data": {"password": base64.b64encode(b"s3cret").decode()},
        }
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    container = {
        "workingDir": str(workdir),
        "args": ["--flag=$(GREETING)"],
        "env": [
            {
                "name": "GREETING",
                "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "GREETING"}},
            },
            {"name": "PLAIN", "value": "x-$(GREETING)"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
    }
    tpl = template(c=container)
    sup = runtime.supervisor
    sup.scale(tpl, 1)
    await wait_until(lambda: bool(sup.ready_endpoints(tpl.key)), what="a ready replica")
    (_, port, name) = sup.ready_endpoints(tpl.key)[0]
    async with httpx.AsyncClient() as client:
        data = (await client.get(f"http://127.0.0.1:{port}/")).json()
    e = data["env"]
    assert e["PORT"] == str(port)
    assert (e["K_SERVICE"], e["K_CONFIGURATION"], e["K_REVISION"]) == (
        "hello",
        "hello",
        "hello-00001",
    )
    assert e["PLAIN"] == "x-hi" and e["CFG_LEVEL"] == "3"
    assert e["PW"] == "s3cret" and e["POD_IP"] == "127.0.0.1" and e["POD_NS"] == "default"
    assert e["POD_NAME"] == name and name.startswith("hello-00001-deployment-")
    assert e["http_proxy"] == "http://127.0.0.1:1" and "127.0.0.1" in e["NO_PROXY"]
    assert data["cwd"] == str(workdir)
    assert data["argv"][1:] == ["--flag=hi"]
    assert data["stdin"] == ""  # stdin is at EOF

    def log() -> bytes:
        return runtime.kubelet.read_log("default", name, "user-container", False, LogOptions())

    await wait_until(lambda: b"request /" in log(), what="the request in the log")
    assert b"listening on" in log()
    pod = runtime.pod(tpl.key)
    labels = pod["metadata"]["labels"]
    assert labels["serving.knative.dev/revision"] == "hello-00001"
    assert pod["spec"]["containers"][0]["name"] == "user-container"


def test_missing_configmap_is_a_clear_error() -> None:
    with pytest.raises(NotFoundError, match='configmap "nope" not found'):
        container_env(
            {
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}
                ]
            },
            PodInfo("p", "default"),
            lambda r, n, k: None,
        )
    optional = container_env(
        {
            "env": [
                {
                    "name": "A",
                    "valueFrom": {
                        "configMapKeyRef": {"name": "nope", "key": "k", "optional": True}
                    },
                }
            ]
        },
        PodInfo("p", "default"),
        lambda r, n, k: None,
    )
    assert "A" not in optional


async def test_a_container_that_exits_reports_its_exit_message(runtime: Runtime) -> None:
    env = [
        {"name": "EXIT_CODE", "value": "5"},
        {"name": "EXIT_MESSAGE", "value": "Failed to start: no database"},
    ]
    tpl = template(c={"env": env})
    sup = runtime.supervisor
    sup.scale(tpl, 1)
    await wait_until(lambda: sup.failure(tpl.key) is not None, what="the failure")
    reason, message = sup.failure(tpl.key)  # type: ignore[misc]
    assert reason == "ExitCode5"
    assert message.startswith("Container failed with: ") and "no database" in message


async def test_http_and_exec_readiness_probes_gate_readiness(
    runtime: Runtime, tmp_path: Path
) -> None:
    sup = runtime.supervisor
    ready_file = tmp_path / "ready"
    http_tpl = template(
        revision="http-00001",
        c={
            "env": [{"name": "READY_FILE", "value": str(ready_file)}],
            "readinessProbe": {"httpGet": {"path": "/ready"}, "periodSeconds": 1},
        },
    )
    exec_file = tmp_path / "exec-ready"
    exec_tpl = template(
        revision="exec-00001",
        c={
            "readinessProbe": {
                "exec": {"command": ["test", "-e", str(exec_file)]},
                "periodSeconds": 1,
            }
        },
    )
    sup.scale(http_tpl, 1)
    sup.scale(exec_tpl, 1)
    await wait_until(lambda: runtime.proc(http_tpl.key) is not None, what="the process")
    log = lambda: runtime.kubelet.read_log(  # noqa: E731
        "default", sup.replicas(http_tpl.key)[0].name, None, False, LogOptions()
    )
    await wait_until(lambda: b"request /ready" in log(), what="a failed readiness probe")
    assert sup.ready_endpoints(http_tpl.key) == []
    assert sup.ready_endpoints(exec_tpl.key) == []
    ready_file.write_text("")
    exec_file.write_text("")
    await wait_until(lambda: bool(sup.ready_endpoints(http_tpl.key)), what="http ready")
    await wait_until(lambda: bool(sup.ready_endpoints(exec_tpl.key)), what="exec ready")
    port = sup.ready_endpoints(http_tpl.key)[0][1]
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/ready")).status_code == 200


async def test_failing_liveness_probe_restarts_the_container(
    runtime: Runtime, tmp_path: Path
) -> None:
    sup = runtime.supervisor
    dead = tmp_path / "dead"
    tpl = template(
        c={
            "env": [{"name": "DEAD_FILE", "value": str(dead)}],
            "livenessProbe": {
                "httpGet": {"path": "/alive"},
                "periodSeconds": 1,
                "failureThreshold": 1,
            },
        }
    )
    sup.scale(tpl, 1)
    await wait_until(lambda: bool(sup.ready_endpoints(tpl.key)), what="ready")
    first = runtime.proc(tpl.key)
    assert first is not None
    dead.write_text("")
    await wait_until(lambda: runtime.restarts(tpl.key) >= 1, what="a restart")
    dead.unlink()
    await wait_until(lambda: bool(sup.ready_endpoints(tpl.key)), what="ready again")
    again = runtime.proc(tpl.key)
    assert again is not None and again.pid != first.pid
    events, _ = runtime.platform.store.list("events", "default")
    assert any("failed liveness probe, will be restarted" in e["message"] for e in events)


async def test_killed_replica_is_restarted(runtime: Runtime) -> None:
    sup = runtime.supervisor
    tpl = template()
    sup.scale(tpl, 1)
    await wait_until(lambda: bool(sup.ready_endpoints(tpl.key)), what="ready")
    proc = runtime.proc(tpl.key)
    assert proc is not None
    os.kill(proc.pid, 9)
    await wait_until(lambda: runtime.restarts(tpl.key) >= 1, what="a restart")
    await wait_until(lambda: bool(sup.ready_endpoints(tpl.key)), what="ready again")


async def test_deleted_pod_is_replaced(runtime: Runtime) -> None:
    sup = runtime.supervisor
    tpl = template()
    changes: list[str] = []
    sup.on_change = changes.append
    sup.scale(tpl, 1)
    await wait_until(lambda: bool(sup.ready_endpoints(tpl.key)), what="ready")
    first = sup.replicas(tpl.key)[0].name
    runtime.platform.store.delete("pods", "default", first)
    await wait_until(lambda: not sup.replicas(tpl.key), what="the replica gone")
    sup.scale(tpl, 1)  # what the revision reconciler does on the change
    await wait_until(lambda: bool(sup.ready_endpoints(tpl.key)), what="a new replica")
    assert sup.replicas(tpl.key)[0].name != first and tpl.key in changes


async def test_sigterm_then_sigkill_after_the_grace_period(runtime: Runtime) -> None:
    sup = runtime.supervisor
    tpl = template(c={"env": [{"name": "IGNORE_TERM", "value": "1"}]}, grace_period=0.5)
    sup.scale(tpl, 2)
    await wait_until(lambda: len(sup.ready_endpoints(tpl.key)) == 2, what="two ready")
    procs = [runtime.proc(tpl.key, i) for i in range(2)]
    sup.scale(tpl, 1)
    assert len(sup.replicas(tpl.key)) == 1
    await sup.stop_revision(tpl.key)
    await wait_until(
        lambda: all(p is not None and p.returncode is not None for p in procs), what="exits"
    )
    assert all(p is not None and p.returncode == -9 for p in procs)


async def test_companions_run_as_native_sidecars(runtime: Runtime) -> None:
    sup = runtime.supervisor
    seen: list[companions.ReplicaInfo] = []

    def factory(
        revision: dict[str, Any], info: companions.ReplicaInfo
    ) -> companions.Companion | None:
        if revision.get("metadata", {}).get("annotations", {}).get("dapr.io/enabled") != "true":
            return None
        seen.append(info)
        port = info.free_port()
        side = companions.CompanionProcess(
            "sidecar", [sys.executable, APP], env={"PORT": str(port)}, ready_port=port
        )
        return companions.Companion([side], app_env={"SIDECAR_PORT": str(port)})

    companions.register("test-sidecar", factory)
    try:
        rev = {"metadata": {"annotations": {"dapr.io/enabled": "true"}}}
        tpl = template(revision_object=rev)
        sup.scale(tpl, 1)
        await wait_until(lambda: bool(sup.ready_endpoints(tpl.key)), what="ready")
        port = sup.ready_endpoints(tpl.key)[0][1]
        async with httpx.AsyncClient() as client:
            env = (await client.get(f"http://127.0.0.1:{port}/")).json()["env"]
            side = await client.get(f"http://127.0.0.1:{env['SIDECAR_PORT']}/")
        assert side.status_code == 200 and seen[0].app_port == port
        pod = runtime.pod(tpl.key)
        assert pod["spec"]["initContainers"][0]["name"] == "sidecar"
        assert pod["spec"]["initContainers"][0]["restartPolicy"] == "Always"
        worker = runtime.kubelet.workers[sup.replicas(tpl.key)[0].uid]
        sidecar_proc = worker.init[0].proc
        await sup.stop_revision(tpl.key)
        assert sidecar_proc is not None and sidecar_proc.returncode is not None
    finally:
        companions.unregister("test-sidecar")


async def test_image_resolves_through_the_project_file_and_builds_once(
    runtime: Runtime, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    app_dir = project / "hello"
    app_dir.mkdir(parents=True)
    (project / "wonderland.yaml").write_text(
        "build:\n  artifacts:\n    - image: example/hello\n      context: ./hello\n"
    )
    (app_dir / "requirements.txt").write_text("# no dependencies\n")
    # The app imports wonderland itself: the platform's packages (an editable install's
    # included) are reachable from the image's environment.
    (app_dir / "main.py").write_text(
        "import os\n"
        "import wonderland\n"
        "async def app(scope, receive, send):\n"
        "    body = os.environ['K_REVISION'] + ' ' + wonderland.__version__\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': body.encode()})\n"
    )
    resolver = ImageResolver(tmp_path / "builds", [project])
    runtime.kubelet.resolver = resolver
    lines: list[str] = []
    await resolver.build("docker.io/example/hello:v1", lines.append)
    assert any("building image" in line for line in lines)
    again: list[str] = []
    await resolver.build("example/hello@sha256:abc", again.append)
    assert any("cached" in line for line in again)
    tpl = template(container={"image": "example/hello:v1"})
    sup = runtime.supervisor
    sup.scale(tpl, 1)
    await wait_until(lambda: bool(sup.ready_endpoints(tpl.key)), what="ready")
    port = sup.ready_endpoints(tpl.key)[0][1]
    async with httpx.AsyncClient() as client:
        answer = (await client.get(f"http://127.0.0.1:{port}/")).text
        assert answer == f"hello-00001 {wonderland.__version__}"
    with pytest.raises(NotFoundError, match="Unable to fetch image 'example/missing'"):
        await resolver.build("example/missing")


async def test_startup_probe_holds_readiness_until_it_passes(
    runtime: Runtime, tmp_path: Path
) -> None:
    sup = runtime.supervisor
    started = tmp_path / "started"
    probe = {"exec": {"command": ["test", "-e", str(started)]}, "periodSeconds": 1}
    tpl = template(c={"startupProbe": {**probe, "failureThreshold": 60}})
    sup.scale(tpl, 1)
    await wait_until(lambda: runtime.proc(tpl.key) is not None, what="the process")
    name = sup.replicas(tpl.key)[0].name
    log = lambda: runtime.kubelet.read_log("default", name, None, False, LogOptions())  # noqa: E731
    await wait_until(lambda: b"listening on" in log(), what="the app listening")
    assert sup.ready_endpoints(tpl.key) == []  # the startup probe still fails
    started.write_text("")
    await wait_until(lambda: bool(sup.ready_endpoints(tpl.key)), what="ready")
