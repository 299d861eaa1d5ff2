"""Fixtures that run the real daemon on loopback and drive it through the CLI."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from core_daemon import Daemon


@pytest.fixture
def daemon_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERLAND_")}
    env["WONDERLAND_HOME"] = str(tmp_path / "home")
    env["WONDERLAND_API_PORT"] = "0"
    env["WONDERLAND_GATEWAY_PORT"] = "0"
    env["KUBECACHEDIR"] = str(tmp_path / "kube-cache")
    env["HOME"] = str(tmp_path)
    return env


@pytest.fixture
def new_daemon(tmp_path: Path, daemon_env: dict[str, str]) -> Iterator[Daemon]:
    """A daemon that is not started yet (always killed, with its process group, at the end)."""
    daemon = Daemon(tmp_path / "home", daemon_env, tmp_path / "daemon.log")
    try:
        yield daemon
    finally:
        # SIGTERM first: the daemon stops the replicas it started, then SIGKILL if stuck.
        daemon.kill(signal.SIGTERM)
        daemon.kill()


@pytest.fixture
def daemon(new_daemon: Daemon) -> Daemon:
    return new_daemon.start()
