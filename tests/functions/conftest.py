"""Shared helpers for the functions tests: real host processes on free ports."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from _support.daemon import (
    READY_TIMEOUT,
    WONDERLAND,
    WonderlandDaemon,
    daemon_env,
    free_port,
    wait_for,
)

__all__ = [
    "READY_TIMEOUT",
    "WONDERLAND",
    "Platform",
    "free_port",
    "running",
    "stop_group",
    "wait_ready",
]


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = READY_TIMEOUT) -> None:
    """Wait until ``url`` answers below 500; fail at once, with its output, if ``proc`` exits."""

    def answers() -> bool:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"process exited with {proc.returncode}:\n{out}")
        try:
            return httpx.get(url, timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    wait_for(answers, timeout, f"{url} to answer")


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


class Platform(WonderlandDaemon):
    """One `wonderland up` daemon with its own state directory (for deploy tests)."""

    def __init__(self, tmp_path: Path) -> None:
        env = daemon_env(tmp_path, gateway_port=free_port())
        super().__init__(tmp_path / "home", env, tmp_path / "daemon.log")

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.run(*args, timeout=timeout)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    """A started `wonderland up`, always stopped (with its process group) at the end."""
    started = Platform(tmp_path)
    try:
        started.start()
        yield started
    finally:
        started.stop()
