"""The warm fork server: a replica's client gets a forked `wonderland serve` with its own
argv, env and streams; exit codes and signals are relayed; a client killed with -9 takes
its child with it; without a fork server the client runs the command itself."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kserve_testing import free_port, stop, wait_for

pytestmark = pytest.mark.e2e

CLIENT = [sys.executable, "-m", "wonderland.kserve.forkserver", "serve"]


@pytest.fixture
def forkserver(tmp_path: Path) -> Iterator[str]:
    sock = f"/tmp/wl-fs-{os.getpid()}-{free_port()}.sock"
    log = tmp_path / "forkserver.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wonderland.kserve.forkserver", "daemon", sock],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: os.path.exists(sock) or proc.poll() is not None, 30, "fork server")
        assert proc.poll() is None, log.read_text()
        yield sock
    finally:
        stop(proc)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sock)


def _env(sock: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KSERVE_FORKSERVER_SOCKET"}
    if sock:
        env["KSERVE_FORKSERVER_SOCKET"] = sock
    return env


def test_output_and_exit_status_come_back(forkserver: str) -> None:
    ok = subprocess.run(
        [*CLIENT, "--help"], env=_env(forkserver), capture_output=True, timeout=60, check=False
    )
    assert ok.returncode == 0
    assert b"--model_dir" in ok.stdout
    bad = subprocess.run(
        [*CLIENT, "--model_dir", "/nonexistent/model"],
        env=_env(forkserver),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0
    assert b"/nonexistent/model" in bad.stderr + bad.stdout


def test_without_a_fork_server_the_client_runs_it_itself() -> None:
    out = subprocess.run(
        [*CLIENT, "--help"],
        env=_env("/tmp/no-such-forkserver.sock"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and b"--model_dir" in out.stdout


def _serve(sock: str, model_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                *CLIENT,
                "--model_name",
                "iris",
                "--model_dir",
                str(model_dir),
                "--http_port",
                str(port),
                "--enable_grpc",
                "false",
            ],
            env=_env(sock),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def iris_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "inference"))
    from train import train

    return train(tmp_path_factory.mktemp("iris")).parent


def test_sigterm_is_relayed_and_sigkill_takes_the_child(
    forkserver: str, iris_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    client = _serve(forkserver, iris_dir, port, tmp_path / "a.log")
    try:
        wait_for(lambda: _ready(port), 30, "the forked model server")
        client.send_signal(signal.SIGTERM)
        client.wait(timeout=30)
        wait_for(lambda: not _ready(port), 30, "the model server to stop")
    finally:
        stop(client)
    port = free_port()
    client = _serve(forkserver, iris_dir, port, tmp_path / "b.log")
    try:
        wait_for(lambda: _ready(port), 30, "the forked model server")
        assert b"REST http://127.0.0.1" in (tmp_path / "b.log").read_bytes()
        client.kill()
        client.wait(timeout=30)
        wait_for(lambda: not _ready(port), 30, "the orphan to be killed")
    finally:
        stop(client)
