"""Fixtures for the model server tests: small models trained here, real server processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _support.daemon import free_port, kill_group, wait_for

__all__ = ["IRIS_ROWS", "ServerProcess", "free_port", "run_server"]

IRIS_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6], [5.1, 3.5, 1.4, 0.2]]


@pytest.fixture(scope="session")
def iris_data() -> tuple[object, object]:
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)


@pytest.fixture(scope="session")
def iris_dir(tmp_path_factory: pytest.TempPathFactory, iris_data: tuple[object, object]) -> Path:
    """An sklearn LogisticRegression on iris, saved as KServe's sklearnserver expects."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    x, y = iris_data
    path = tmp_path_factory.mktemp("iris")
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), path / "model.joblib")
    return path


@pytest.fixture(scope="session")
def iris_expected(iris_dir: Path) -> list[int]:
    import joblib
    import numpy as np

    model = joblib.load(iris_dir / "model.joblib")
    return [int(v) for v in model.predict(np.array(IRIS_ROWS))]


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/v2/health/ready", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


@contextlib.contextmanager
def run_server(
    args: list[str],
    tmp_path: Path,
    env: dict[str, str] | None = None,
    wait_ready: bool = True,
    ready_timeout: float = 30,
) -> Iterator[ServerProcess]:
    """Start ``wonderland serve`` in its own process group; always kill the group."""
    http_port, grpc_port = free_port(), free_port()
    log = tmp_path / f"serve-{http_port}.log"
    cmd = [sys.executable, "-m", "wonderland", "serve", "--grpc_port", str(grpc_port), *args]
    if env and "PORT" in env:
        http_port = int(env["PORT"])  # the container contract: PORT is the HTTP port
    else:
        cmd += ["--http_port", str(http_port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    server = ServerProcess(proc, http_port, grpc_port, log)
    try:
        if wait_ready:

            def ready() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"server exited: {log.read_text()}")
                return _ready(server.url)

            wait_for(ready, ready_timeout, "the model server to be ready", log=log)
        yield server
    finally:
        kill_group(proc, signal.SIGTERM, timeout=10)


@pytest.fixture(scope="module")
def iris_server(
    iris_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with run_server(
        ["--model_name", "iris", "--model_dir", str(iris_dir)], tmp_path_factory.mktemp("srv")
    ) as server:
        yield server
