"""The tracking server as a platform component, in-process: states, the front, the
kubelet's MLFLOW_TRACKING_URI, PostgreSQL, and the lean process on the pinned mlflow."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from _support.daemon import wait_until
from _support.mlflow import mlflow_server, needs_mlflow

from wonderland.platform import Platform
from wonderland.runtime.kubelet import Kubelet
from wonderland.settings import Settings
from wonderland.tracking.access import ExternalTracking, TrackingAccess, TrackingPodEnv
from wonderland.tracking.client import RestClient, TrackingUnavailable
from wonderland.tracking.server import TrackingServer, redact_uri


def settings(tmp_path: Path, **extra: object) -> Settings:
    values: dict[str, object] = {
        "home": tmp_path / "home",
        "api_port": 0,
        "gateway_port": 0,
        "mlflow_port": 0,
        "backoff_seconds": 0.2,
    }
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def platform_without_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Platform]:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object) -> object:
        return None if name == "mlflow" else real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    platform = Platform.open(settings(tmp_path))
    platform.install_plugins(("wonderland.tracking", "wonderland.workloads", "wonderland.serving"))
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()
        platform.store.close()


async def test_without_mlflow_the_platform_runs_and_says_which_extra(
    platform_without_mlflow: Platform,
) -> None:
    platform = platform_without_mlflow
    info = platform.info["mlflow"]
    assert info["state"] == "not installed: pip install 'wonderland[mlflow]'"
    tracking = platform.require(TrackingAccess)  # type: ignore[type-abstract]
    assert not tracking.enabled
    with pytest.raises(TrackingUnavailable, match="not installed"):
        await tracking.wake()
    # pods get no MLFLOW_TRACKING_URI, and the rest of the platform (gateway) runs
    assert platform.require(Kubelet).pod_env({}) == {}
    async with httpx.AsyncClient() as client:
        answer = await client.get(platform.info["gateway"] + "/", headers={"Host": "nothing"})
    assert answer.status_code == 404


async def test_a_taken_port_leaves_the_platform_running(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        platform = Platform.open(settings(tmp_path, mlflow_port=port))
        platform.install_plugins(("wonderland.tracking",))
        server = platform.require(TrackingAccess)  # type: ignore[type-abstract]
        await platform.start()
        try:
            assert platform.info["mlflow"]["state"] == f"unavailable: port {port} in use"
            assert not server.enabled
        finally:
            await platform.stop()
            platform.store.close()


def test_pod_env_and_the_opt_out_annotation() -> None:
    source = TrackingPodEnv(ExternalTracking("http://mlflow.example.com:5000/"))
    assert source({}) == {"MLFLOW_TRACKING_URI": "http://mlflow.example.com:5000"}
    assert source({"tracking.wonderland.dev/mlflow": "off"}) == {}
    assert source({"tracking.wonderland.dev/mlflow": "on"}) != {}


def test_passwords_never_show() -> None:
    assert redact_uri("postgresql://mlflow:s3cret@db:5432/mlflow") == (
        "postgresql://mlflow:***@db:5432/mlflow"
    )
    assert redact_uri("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


@needs_mlflow
def test_the_lean_process_runs_on_the_pinned_mlflow(tmp_path: Path) -> None:
    # mlflow_process sets MLflow's private _MLFLOW_SERVER_* variables: the extra pins the
    # version they were read from, and this starts the process against what is installed
    import mlflow

    assert mlflow.__version__ == "3.17.2", "re-read mlflow.server's _MLFLOW_SERVER_* variables"
    with mlflow_server(tmp_path / "m") as server, RestClient(server.url) as client:
        assert client.health()
        assert client.ensure_experiment("pinned")


@needs_mlflow
async def test_held_connections_get_a_503_naming_the_log_when_it_cannot_start(
    tmp_path: Path,
) -> None:
    server = TrackingServer(settings(tmp_path), python="/bin/false")
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.get(server.client_uri + "/health")
        assert answer.status_code == 503
        assert "could not start" in answer.text and str(server.log_path) in answer.text
        assert server.state.startswith("failed: ")
    finally:
        await server.stop()


def _postgres() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


PSQL = ("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-v", "ON_ERROR_STOP=1")


def _psql(sql: str) -> None:
    subprocess.run(
        [*PSQL, "-c", sql],
        check=True,
        capture_output=True,
        timeout=30,
    )


@needs_mlflow
@pytest.mark.slow
async def test_postgresql_backend(tmp_path: Path) -> None:
    if not _postgres():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not listening on 127.0.0.1:5432 (CI must provide it)")
        pytest.skip("PostgreSQL is not listening on 127.0.0.1:5432 (trust auth, user postgres)")
    database = f"mlflow_{uuid.uuid4().hex[:12]}"
    await asyncio.to_thread(_psql, f"CREATE DATABASE {database}")
    server = TrackingServer(
        settings(
            tmp_path,
            mlflow_backend_store_uri=f"postgresql://postgres:pw@127.0.0.1:5432/{database}",
        )
    )
    try:
        await server.start()
        assert server.status().backend == f"postgresql://postgres:***@127.0.0.1:5432/{database}"
        url = await server.wake()
        assert server.state == "running"

        def log_metric() -> float:
            with RestClient(server.client_uri) as client:
                experiment = client.ensure_experiment("pg")
                run_id = client.create_run(experiment, "pg")["info"]["run_id"]
                client.log_batch(run_id, metrics=[("loss", 0.25, 0, 0)])
                return float(client.get_run(run_id)["data"]["metrics"][0]["value"])

        assert await asyncio.to_thread(log_metric) == 0.25
        assert url.startswith("http://127.0.0.1:")
        log = server.log_path.read_text()
        assert "pw@" not in log
    finally:
        await server.stop()
        await asyncio.to_thread(_psql, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    await wait_until(lambda: server.proc is None, 5, "the process to stop")
