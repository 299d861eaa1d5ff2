"""``wonderland sidecar`` as a user runs it: flags, the app command, env, durability."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from wonderland.cli import main
from wonderland.dapr.sidecar import SidecarProcess, free_port

pytestmark = pytest.mark.e2e


def _run(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wonderland", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_app_command_gets_dapr_env_and_its_exit_code(basic_resources: Path, tmp_path: Path) -> None:
    http, grpc, app = free_port(), free_port(), free_port()
    script = (
        "import json, os, sys, urllib.request;"
        "keys = ['APP_ID', 'APP_PORT', 'DAPR_HTTP_PORT', 'DAPR_GRPC_PORT'];"
        "print(json.dumps({k: os.environ.get(k) for k in keys}));"
        "r = urllib.request.urlopen('http://127.0.0.1:%s/v1.0/healthz/outbound' % os.environ['DAPR_HTTP_PORT']);"
        "sys.exit(3 if r.status == 204 else 1)"
    )
    env = {**os.environ, "WONDERLAND_HOME": str(tmp_path / "home")}
    res = _run(
        [
            "sidecar",
            "--app-id",
            "cmd",
            "--app-port",
            str(app),
            "--dapr-http-port",
            str(http),
            "--dapr-grpc-port",
            str(grpc),
            "--resources-path",
            str(basic_resources),
            "--",
            sys.executable,
            "-c",
            script,
        ],
        env,
    )
    assert res.returncode == 3, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got == {
        "APP_ID": "cmd",
        "APP_PORT": str(app),
        "DAPR_HTTP_PORT": str(http),
        "DAPR_GRPC_PORT": str(grpc),
    }


# The sidecar with ports the kernel picks (the command must fail before it listens).
SIDECAR_ON_FREE_PORTS = [
    "sidecar",
    "--app-id",
    "x",
    "--dapr-http-port",
    "0",
    "--dapr-grpc-port",
    "0",
]


def test_unknown_component_type_and_field_fail_clearly(
    resources: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = resources(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\n"
        "spec: {type: state.cassandra, version: v1}\n"
    )
    assert main([*SIDECAR_ON_FREE_PORTS, "--resources-path", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "state.cassandra" in err and "state.redis" in err
    (folder / "r0.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\n"
        "spec: {type: state.in-memory, version: v1, metadata: [{name: redisHostt, value: x}]}\n"
    )
    assert main([*SIDECAR_ON_FREE_PORTS, "--resources-path", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "redisHostt" in err and "r0.yaml" in err
    (folder / "r0.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\n"
        "spec: {type: state.in-memory, version: v1, metdata: []}\n"
    )
    assert main(["sidecar", "--app-id", "x", "--resources-path", str(folder)]) == 1
    assert "metdata" in capsys.readouterr().err


def test_missing_resources_path_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sidecar", "--app-id", "x", "--resources-path", str(tmp_path / "nope")]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_acknowledged_writes_survive_kill_9(
    sidecar_factory: Callable[..., SidecarProcess], basic_resources: Path
) -> None:
    sc = sidecar_factory("durable", resources_path=[basic_resources])
    for i in range(20):
        r = httpx.post(sc.http_url + "/v1.0/state/statestore", json=[{"key": f"k{i}", "value": i}])
        assert r.status_code == 204
    sc.kill()
    sc2 = sidecar_factory("durable", resources_path=[basic_resources])
    rows = httpx.post(
        sc2.http_url + "/v1.0/state/statestore/bulk", json={"keys": [f"k{i}" for i in range(20)]}
    ).json()
    assert [row.get("data") for row in rows] == list(range(20))


def test_secret_key_ref_resolves_component_metadata(
    sidecar_factory: Callable[..., SidecarProcess], resources: Callable[[str], Path], tmp_path: Path
) -> None:
    (tmp_path / "secrets.json").write_text(json.dumps({"dbpath": str(tmp_path / "from-secret.db")}))
    folder = resources(
        """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: secrets}
spec:
  type: secretstores.local.file
  version: v1
  metadata: [{name: secretsFile, value: "{tmp}/secrets.json"}]
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: statestore}
spec:
  type: state.sqlite
  version: v1
  metadata:
  - name: connectionString
    secretKeyRef: {name: dbpath, key: dbpath}
auth: {secretStore: secrets}
"""
    )
    sc = sidecar_factory("refs", resources_path=[folder])
    assert (
        httpx.post(
            sc.http_url + "/v1.0/state/statestore", json=[{"key": "a", "value": 1}]
        ).status_code
        == 204
    )
    assert (tmp_path / "from-secret.db").exists()


def test_invocation_between_two_sidecars(
    sidecar_factory: Callable[..., SidecarProcess],
    basic_resources: Path,
    app_factory: Callable[..., int],
) -> None:
    app_b = app_factory()
    sidecar_factory("callee", resources_path=[basic_resources], app_port=app_b)
    caller = sidecar_factory("caller", resources_path=[basic_resources])
    r = httpx.post(
        caller.http_url + "/v1.0/invoke/callee/method/echo/x?q=1",
        content=b"hi",
        headers={"x-status": "201"},
    )
    assert r.status_code == 201
    body = r.json()
    assert body["path"] == "/echo/x" and body["query"] == "q=1" and body["body"] == "hi"
    assert body["headers"]["dapr-caller-app-id"] == "caller"
    assert body["headers"]["dapr-callee-app-id"] == "callee"
    r = httpx.get(caller.http_url + "/echo/y", headers={"dapr-app-id": "callee"})
    assert r.json()["path"] == "/echo/y"
    r = httpx.get(caller.http_url + "/v1.0/invoke/nobody/method/x")
    assert r.status_code == 500 and r.json()["errorCode"] == "ERR_DIRECT_INVOKE"


def test_app_api_token_is_sent_to_the_app(
    sidecar_factory: Callable[..., SidecarProcess],
    basic_resources: Path,
    app_factory: Callable[..., int],
) -> None:
    app = app_factory()
    sc = sidecar_factory(
        "apptok",
        resources_path=[basic_resources],
        app_port=app,
        env={"APP_API_TOKEN": "app-secret"},
    )
    body = httpx.get(sc.http_url + "/v1.0/invoke/apptok/method/echo").json()
    assert body["headers"]["dapr-api-token"] == "app-secret"


def test_sigterm_stops_the_sidecar_and_the_app(basic_resources: Path, tmp_path: Path) -> None:
    http = free_port()
    pidfile = tmp_path / "app.pid"
    script = (
        f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    )
    env = {**os.environ, "WONDERLAND_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wonderland",
            "sidecar",
            "--app-id",
            "term",
            "--dapr-http-port",
            str(http),
            "--dapr-grpc-port",
            "0",
            "--resources-path",
            str(basic_resources),
            "--",
            sys.executable,
            "-c",
            script,
        ],
        env=env,
        start_new_session=True,
        stderr=subprocess.DEVNULL,
    )
    try:
        from _support.daemon import wait_for

        wait_for(lambda: pidfile.exists() and pidfile.read_text())
        app_pid = int(pidfile.read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0

        def gone() -> bool:
            try:
                os.kill(app_pid, 0)
            except ProcessLookupError:
                return True
            return False

        wait_for(gone)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
