"""Dapr on the platform: `wonderland up`, Knative Services with dapr.io annotations, one sidecar
per replica fed from the applied Component/Subscription resources, the kubernetes secret
store and service invocation between app ids."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dapr_testing import wait_until

from wonderland.dapr.sidecar import free_port

pytestmark = pytest.mark.e2e

APP = str(Path(__file__).parent / "dapr_app.py")


def ksvc(name: str) -> str:
    return f"""
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  template:
    metadata:
      annotations:
        dapr.io/enabled: "true"
        dapr.io/app-id: {name}
        dapr.io/app-port: "8080"
        autoscaling.knative.dev/min-scale: "1"
    spec:
      containers:
      - image: dapr-app
        command: ["{sys.executable}", "{APP}"]
"""


def manifests(tmp: Path) -> str:
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: db, namespace: default}}
stringData: {{password: s3cret}}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: statestore, namespace: default}}
spec:
  type: state.sqlite
  version: v1
  metadata: [{{name: connectionString, value: "{tmp}/platform-state.db"}}]
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: pubsub, namespace: default}}
spec: {{type: pubsub.in-memory, version: v1}}
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {{name: orders, namespace: default}}
spec: {{pubsubname: pubsub, topic: orders, routes: {{default: /orders}}}}
scopes: [front]
---
{ksvc("front")}
---
{ksvc("back")}
"""


class Daemon:
    def __init__(self, tmp: Path) -> None:
        self.home = tmp / "home"
        self.gateway_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERLAND_")}
        self.env.update(
            WONDERLAND_HOME=str(self.home),
            WONDERLAND_API_PORT="0",
            WONDERLAND_GATEWAY_PORT=str(self.gateway_port),
            HOME=str(tmp),
        )
        self.log = tmp / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.gateway = f"http://127.0.0.1:{self.gateway_port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "wonderland", "up"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while not (self.home / "daemon.json").exists():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [sys.executable, "-m", "wonderland", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check:
            assert res.returncode == 0, res.stderr
        return res

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    try:
        d.start()
        yield d
    finally:
        d.stop()


def _call(
    d: Daemon, service: str, path: str, method: str = "GET", body: bytes = b""
) -> httpx.Response:
    return httpx.request(
        method,
        d.gateway + path,
        content=body,
        timeout=60,
        headers={"Host": f"{service}.default.127.0.0.1.sslip.io"},
    )


def test_dapr_enabled_services_get_sidecars_fed_from_applied_resources(
    daemon: Daemon, tmp_path: Path
) -> None:
    files = tmp_path / "m.yaml"
    files.write_text(manifests(tmp_path))
    daemon.cli("apply", "-f", str(files))

    def up() -> bool:
        try:
            return (
                _call(daemon, "front", "/hello").text == "front"
                and _call(daemon, "back", "/hello").text == "back"
            )
        except httpx.HTTPError:
            return False

    wait_until(up, timeout=60, interval=0.5)
    assert _call(daemon, "front", "/state/greeting", "POST", b"hello").status_code == 204
    assert _call(daemon, "front", "/state/greeting").json() == "hello"
    assert _call(daemon, "front", "/secret/db").json() == {"password": "s3cret"}
    assert _call(daemon, "front", "/call/back/hello").text == "back"
    assert _call(daemon, "front", "/publish/orders", "POST", b'{"n": 1}').status_code == 204
    got = wait_until(lambda: _call(daemon, "front", "/received").json(), timeout=30)
    assert got[0]["data"] == {"n": 1} and got[0]["source"] == "front"


def test_bad_component_is_refused_at_apply(daemon: Daemon, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s, namespace: default}\n"
        "spec: {type: state.cassandra, version: v1}\n"
    )
    res = daemon.cli("apply", "-f", str(bad), check=False)
    assert res.returncode != 0
    assert "state.cassandra" in res.stderr
    bad.write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s, namespace: default}\n"
        "spec: {type: state.redis, version: v1, metadata: [{name: redisHots, value: x}]}\n"
    )
    res = daemon.cli("apply", "-f", str(bad), check=False)
    assert res.returncode != 0 and "redisHots" in res.stderr
