from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support.daemon import kill_group, wait_for

from wonderland.dapr.sidecar import SidecarProcess, free_port

HERE = Path(__file__).parent

BACKENDS = {
    "redis": 6379,
    "postgresql": 5432,
    "rabbitmq": 5672,
    "mqtt": 1883,
    "nats": 4222,
}


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def require_backend(name: str) -> None:
    """Skip (locally) or fail (CI=true) when the backing server is not running."""
    port = BACKENDS[name]
    if _reachable(port):
        return
    reason = f"{name} is not running on 127.0.0.1:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: backing servers are required)")
    pytest.skip(reason)


def wait_port(port: int, timeout: float = 30.0) -> None:
    wait_for(lambda: _reachable(port), timeout, f"something to listen on 127.0.0.1:{port}")


@pytest.fixture
def resources(tmp_path: Path) -> Callable[[str], Path]:
    """Write YAML into a fresh resources folder and return the folder."""
    folder = tmp_path / "resources"
    folder.mkdir()
    counter = iter(range(1000))

    def write(text: str) -> Path:
        (folder / f"r{next(counter)}.yaml").write_text(text.replace("{tmp}", str(tmp_path)))
        return folder

    return write


@pytest.fixture
def sidecar_factory(tmp_path: Path) -> Iterator[Callable[..., SidecarProcess]]:
    started: list[SidecarProcess] = []

    def start(app_id: str = "myapp", **kwargs: Any) -> SidecarProcess:
        env = {"WONDERLAND_HOME": str(tmp_path / "home"), **kwargs.pop("env", {})}
        sc = SidecarProcess(app_id, env=env, log_file=tmp_path / f"sidecar-{app_id}.log", **kwargs)
        started.append(sc)
        return sc.start()

    try:
        yield start
    finally:
        for sc in started:
            sc.stop()


@pytest.fixture
def app_factory() -> Iterator[Callable[..., int]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(subscriptions: Any = None, port: int | None = None) -> int:
        port = port or free_port()
        env = {**os.environ, "APP_PORT": str(port)}
        if subscriptions is not None:
            import json

            env["SUBSCRIPTIONS"] = json.dumps(subscriptions)
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "app_server.py")], env=env, start_new_session=True
        )
        procs.append(proc)
        wait_port(port)
        return port

    try:
        yield start
    finally:
        for proc in procs:
            kill_group(proc, signal.SIGKILL, timeout=10)


def received(app_port: int) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = httpx.get(
        f"http://127.0.0.1:{app_port}/received", timeout=10
    ).json()
    return data


BASIC = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: statestore}
spec:
  type: state.sqlite
  version: v1
  metadata:
  - {name: connectionString, value: "{tmp}/state.db"}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: pubsub}
spec: {type: pubsub.in-memory, version: v1}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: localsecrets}
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - {name: secretsFile, value: "{tmp}/secrets.json"}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: config}
spec:
  type: configuration.wonderland.file
  version: v1
  metadata:
  - {name: path, value: "{tmp}/config.yaml"}
  - {name: pollInterval, value: 100ms}
"""


def write_basic(base: Path) -> Path:
    """The basic resources (sqlite, in-memory pubsub, file secrets and config) under ``base``."""
    (base / "secrets.json").write_text(
        '{"conftestsecret": "abcd", "secondsecret": "efgh", "db": {"password": "pw"}}'
    )
    (base / "config.yaml").write_text("greeting: hello\nlimit: {value: '10', version: '3'}\n")
    folder = base / "resources"
    folder.mkdir(exist_ok=True)
    (folder / "basic.yaml").write_text(BASIC.replace("{tmp}", str(base)))
    return folder


@pytest.fixture
def basic_resources(tmp_path: Path, resources: Callable[[str], Path]) -> Path:
    resources("")  # creates the folder through the shared fixture
    return write_basic(tmp_path)


@pytest.fixture(scope="module")
def shared_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProcess]:
    """One sidecar (basic resources, an app) for a whole test module."""
    base = tmp_path_factory.mktemp("shared")
    folder = write_basic(base)
    port = free_port()
    env = {**os.environ, "APP_PORT": str(port)}
    app = subprocess.Popen(
        [sys.executable, str(HERE / "app_server.py")], env=env, start_new_session=True
    )
    sc = SidecarProcess(
        "shared",
        resources_path=[folder],
        app_port=port,
        log_file=base / "sidecar.log",
        env={"WONDERLAND_HOME": str(base / "home")},
    )
    try:
        sc.workdir = base  # type: ignore[attr-defined]  # secrets.json and config.yaml live here
        wait_port(port)
        sc.start()
        yield sc
    finally:
        sc.stop()
        kill_group(app, signal.SIGKILL, timeout=10)
