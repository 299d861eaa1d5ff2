"""Processes the monitoring benches start: a model server, a CloudEvents receiver."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
SRC = str(REPO / "src")
RECEIVER = Path(__file__).resolve().parent / "_receiver.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KSERVE_", "WONDERLAND_"))}
    env["PYTHONPATH"] = SRC
    env.update(extra)
    return env


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


@contextmanager
def process(argv: list[str], ready_url: str, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, env=_env(**env), stdout=subprocess.DEVNULL)
    try:
        _wait(ready_url, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def model_server(model_dir: Path, name: str, **env: str) -> Iterator[str]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "wonderland",
        "serve",
        f"--model_dir={model_dir}",
        f"--model_name={name}",
        f"--http_port={port}",
        "--enable_grpc=false",
    ]
    url = f"http://127.0.0.1:{port}"
    with process(argv, f"{url}/v2/health/ready", **env):
        yield url


@contextmanager
def receiver() -> Iterator[str]:
    """A CloudEvents receiver that answers 202 and keeps the arrival time of each event."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, str(RECEIVER), str(port)], f"{url}/received"):
        yield url


def train(dest: Path) -> Path:
    sys.path.insert(0, str(REPO / "examples" / "inference"))
    from train import train as fit

    return fit(dest).parent
