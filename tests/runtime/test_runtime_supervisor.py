"""Replicas as local processes: the runtime contract, probes, failures, images, companions."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import wonderland
from wonderland.errors import NotFoundError
from wonderland.runtime import (
    ImageResolver,
    PodInfo,
    ReplicaTemplate,
    Supervisor,
    companions,
    container_env,
)

APP = str(Path(__file__).with_name("runtime_app.py"))


async def wait_for(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[Supervisor]:
    sup = Supervisor(tmp_path, gateway_url="http://127.0.0.1:1")
    try:
        yield sup
    finally:
        await sup.stop()


def template(**kw: Any) -> ReplicaTemplate:
    base: dict[str, Any] = {
        "namespace": "default",
        "revision": "hello-00001",
        "service": "hello",
        "configuration": "hello",
        "argv": [sys.executable, APP],
        "env": {},
        "grace_period": 5.0,
        "progress_deadline": 30.0,
    }
    base.update(kw)
    return ReplicaTemplate(**base)


async def test_runtime_contract_env_cwd_stdin_and_logs(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    lookups = {
        ("configmaps", "default", "cfg"): {"data": {"GREETING": "hi", "LEVEL": "3"}},
        ("secrets", "default", "pw"): {"data": {"password": base64.b64encode(b"s3cret").decode()}},
    }
    container = {
        "env": [
            {"name": "PLAIN", "value": "x-$(GREETING)"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
        "envFrom": [
            {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
            {"configMapRef": {"name": "cfg"}},
        ],
    }
    env = container_env(
        container,
        PodInfo("hello-00001-deployment", "default"),
        lambda r, n, k: lookups.get((r, n, k)),
    )
    assert env["PLAIN"] == "x-hi" and env["PW"] == "s3cret" and env["CFG_LEVEL"] == "3"
    workdir = tmp_path / "work"
    workdir.mkdir()
    tpl = template(env=env, cwd=str(workdir), argv=[sys.executable, APP, "--flag=$(GREETING)"])
    supervisor.scale(tpl, 1)
    await wait_for(lambda: bool(supervisor.ready_endpoints(tpl.key)))
    (_, port, name) = supervisor.ready_endpoints(tpl.key)[0]
    async with httpx.AsyncClient() as client:
        data = (await client.get(f"http://127.0.0.1:{port}/")).json()
    e = data["env"]
    assert e["PORT"] == str(port)
    assert (e["K_SERVICE"], e["K_CONFIGURATION"], e["K_REVISION"]) == (
        "hello",
        "hello",
        "hello-00001",
    )
    assert e["PW"] == "s3cret" and e["POD_IP"] == "127.0.0.1" and e["POD_NS"] == "default"
    assert e["http_proxy"] == "http://127.0.0.1:1" and "127.0.0.1" in e["NO_PROXY"]
    assert data["cwd"] == str(workdir)
    assert data["argv"][1:] == ["--flag=hi"]
    assert data["stdin"] == ""  # stdin is at EOF
    log = tmp_path / "logs" / "default" / "hello-00001" / f"{name}.log"
    await wait_for(lambda: b"request /" in log.read_bytes())
    assert b"listening on" in log.read_bytes()


def test_missing_configmap_is_a_clear_error() -> None:
    with pytest.raises(NotFoundError, match="ConfigMap default/nope does not exist"):
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


async def test_a_container_that_exits_reports_its_exit_message(supervisor: Supervisor) -> None:
    tpl = template(env={"EXIT_CODE": "5", "EXIT_MESSAGE": "Failed to start: no database"})
    supervisor.scale(tpl, 1)
    await wait_for(lambda: supervisor.failure(tpl.key) is not None)
    reason, message = supervisor.failure(tpl.key)  # type: ignore[misc]
    assert reason == "ExitCode5"
    assert message.startswith("Container failed with: ") and "no database" in message


async def test_http_and_exec_readiness_probes_gate_readiness(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    ready_file = tmp_path / "ready"
    http_tpl = template(
        revision="http-00001",
        env={"READY_FILE": str(ready_file)},
        readiness={"httpGet": {"path": "/ready"}, "periodSeconds": 0},
    )
    exec_file = tmp_path / "exec-ready"
    exec_tpl = template(
        revision="exec-00001",
        readiness={"exec": {"command": ["test", "-e", str(exec_file)]}},
    )
    supervisor.scale(http_tpl, 1)
    supervisor.scale(exec_tpl, 1)
    await wait_for(lambda: supervisor.replicas(http_tpl.key)[0].process is not None)
    await asyncio.sleep(0.5)
    assert supervisor.ready_endpoints(http_tpl.key) == []
    assert supervisor.ready_endpoints(exec_tpl.key) == []
    ready_file.write_text("")
    exec_file.write_text("")
    await wait_for(lambda: bool(supervisor.ready_endpoints(http_tpl.key)))
    await wait_for(lambda: bool(supervisor.ready_endpoints(exec_tpl.key)))
    port = supervisor.ready_endpoints(http_tpl.key)[0][1]
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/ready")).status_code == 200


async def test_failing_liveness_probe_restarts_the_replica(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    dead = tmp_path / "dead"
    tpl = template(
        env={"DEAD_FILE": str(dead)},
        liveness={"httpGet": {"path": "/alive"}, "periodSeconds": 1, "failureThreshold": 1},
    )
    supervisor.scale(tpl, 1)
    await wait_for(lambda: bool(supervisor.ready_endpoints(tpl.key)))
    replica = supervisor.replicas(tpl.key)[0]
    first_pid = replica.process.pid  # type: ignore[union-attr]
    dead.write_text("")
    await wait_for(lambda: replica.restarts >= 1)
    dead.unlink()
    await wait_for(lambda: bool(supervisor.ready_endpoints(tpl.key)))
    assert replica.process is not None and replica.process.pid != first_pid


async def test_killed_replica_is_restarted(supervisor: Supervisor) -> None:
    tpl = template()
    supervisor.scale(tpl, 1)
    await wait_for(lambda: bool(supervisor.ready_endpoints(tpl.key)))
    replica = supervisor.replicas(tpl.key)[0]
    assert replica.process is not None
    os.kill(replica.process.pid, 9)
    await wait_for(lambda: replica.restarts >= 1)
    await wait_for(lambda: bool(supervisor.ready_endpoints(tpl.key)))


async def test_sigterm_then_sigkill_after_the_grace_period(supervisor: Supervisor) -> None:
    tpl = template(env={"IGNORE_TERM": "1"}, grace_period=0.5)
    supervisor.scale(tpl, 2)
    await wait_for(lambda: len(supervisor.ready_endpoints(tpl.key)) == 2)
    procs = [r.process for r in supervisor.replicas(tpl.key)]
    supervisor.scale(tpl, 1)
    assert len(supervisor.replicas(tpl.key)) == 1
    await supervisor.stop_revision(tpl.key)
    await wait_for(lambda: all(p is not None and p.returncode is not None for p in procs))
    assert all(p is not None and p.returncode == -9 for p in procs)


async def test_companions_start_beside_each_replica(supervisor: Supervisor, tmp_path: Path) -> None:
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
        supervisor.scale(tpl, 1)
        await wait_for(lambda: bool(supervisor.ready_endpoints(tpl.key)))
        port = supervisor.ready_endpoints(tpl.key)[0][1]
        async with httpx.AsyncClient() as client:
            env = (await client.get(f"http://127.0.0.1:{port}/")).json()["env"]
            side = await client.get(f"http://127.0.0.1:{env['SIDECAR_PORT']}/")
        assert side.status_code == 200 and seen[0].app_port == port
        sidecar_proc = supervisor.replicas(tpl.key)[0].companion_procs[0]
        await supervisor.stop_revision(tpl.key)
        assert sidecar_proc.returncode is not None
    finally:
        companions.unregister("test-sidecar")


async def test_image_resolves_through_the_project_file_and_builds_once(
    supervisor: Supervisor, tmp_path: Path
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
    lines: list[str] = []
    built = await resolver.build("docker.io/example/hello:v1", lines.append)
    assert any("building image" in line for line in lines)
    again: list[str] = []
    await resolver.build("example/hello@sha256:abc", again.append)
    assert any("cached" in line for line in again)
    tpl = template(argv=list(built.argv), env=dict(built.env), cwd=str(built.context))
    supervisor.scale(tpl, 1)
    await wait_for(lambda: bool(supervisor.ready_endpoints(tpl.key)))
    port = supervisor.ready_endpoints(tpl.key)[0][1]
    async with httpx.AsyncClient() as client:
        answer = (await client.get(f"http://127.0.0.1:{port}/")).text
        assert answer == f"hello-00001 {wonderland.__version__}"
    with pytest.raises(NotFoundError, match="Unable to fetch image 'example/missing'"):
        await resolver.build("example/missing")
    json.dumps(lines)


async def test_startup_probe_holds_readiness_until_it_passes(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    tpl = template(startup={"exec": {"command": ["test", "-e", str(started)]}})
    supervisor.scale(tpl, 1)
    await wait_for(lambda: supervisor.replicas(tpl.key)[0].process is not None)
    await asyncio.sleep(0.5)  # the app listens by now; the startup probe still fails
    assert supervisor.ready_endpoints(tpl.key) == []
    started.write_text("")
    await wait_for(lambda: bool(supervisor.ready_endpoints(tpl.key)))
