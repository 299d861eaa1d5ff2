"""A bare MLflow tracking server for tests and benchmarks: the lean process on a free port,
in its own process group, torn down at the end."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from _support.daemon import free_port, wait_for

__all__ = ["MlflowServer", "mlflow_server", "needs_mlflow"]

try:
    import mlflow  # noqa: F401

    HAVE_MLFLOW = True
except ImportError:  # pragma: no cover - the dev extra installs it
    HAVE_MLFLOW = False

needs_mlflow = pytest.mark.skipif(
    not HAVE_MLFLOW, reason="mlflow is not installed (pip install -e '.[mlflow]')"
)


class MlflowServer:
    def __init__(self, url: str, root: Path, proc: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.root = root
        self.proc = proc


@contextlib.contextmanager
def mlflow_server(root: Path, backend_store_uri: str = "") -> Iterator[MlflowServer]:
    """The lean tracking server over SQLite in ``root`` (or ``backend_store_uri``)."""
    from wonderland.tracking.server import lean_command, lean_environment

    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = lean_environment(
        backend_store_uri=backend_store_uri or f"sqlite:///{root / 'mlflow.db'}",
        artifacts_dir=root / "artifacts",
        port=port,
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        lean_command(sys.executable),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        from wonderland.tracking.client import RestClient

        with RestClient(url) as client:
            wait_for(
                lambda: client.health() or proc.poll() is not None,
                60,
                "mlflow /health",
                log=root / "server.log",
            )
        if proc.poll() is not None:
            raise RuntimeError((root / "server.log").read_text()[-2000:])
        yield MlflowServer(url, root, proc)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
