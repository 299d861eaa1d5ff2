"""Shared helpers for the functions tests: real host processes on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

READY_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"process exited with {proc.returncode}:\n{out}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} not ready after {timeout}s")


def stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> str:
    """Stop the process group and return everything the process printed."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = proc.communicate()
    return out.decode(errors="replace") if out else ""


@contextmanager
def running(
    argv: list[str], ready_url: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` in its own process group, wait for ``ready_url``, always kill it."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=full_env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        wait_ready(ready_url, proc)
        yield proc
    finally:
        if proc.poll() is None:
            stop_group(proc, signal.SIGKILL)
        else:
            proc.communicate()


WONDERLAND = [sys.executable, "-m", "wonderland"]


class Platform:
    """One `wonderland up` daemon with its own state directory (for deploy tests)."""

    def __init__(self, tmp_path: Path) -> None:
        self.home = tmp_path / "home"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERLAND_")}
        self.env.update(
            {
                "WONDERLAND_HOME": str(self.home),
                "WONDERLAND_API_PORT": "0",
                "WONDERLAND_GATEWAY_PORT": str(free_port()),
                "HOME": str(tmp_path),
            }
        )
        self.log = tmp_path / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Platform:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*WONDERLAND, "up"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while not (self.home / "daemon.json").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the daemon did not start: {self.log.read_text()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*WONDERLAND, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
