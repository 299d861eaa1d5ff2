"""Fixtures that run the real daemon on loopback and drive it through the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _support.daemon import daemon_env as confined_env
from core_daemon import Daemon

from wonderland.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An open store in a fresh state directory, closed at the end."""
    s = Store.open(tmp_path)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def daemon_env(tmp_path: Path) -> dict[str, str]:
    return confined_env(tmp_path, KUBECACHEDIR=str(tmp_path / "kube-cache"))


@pytest.fixture
def new_daemon(tmp_path: Path, daemon_env: dict[str, str]) -> Iterator[Daemon]:
    """A daemon that is not started yet (always killed, with its process group, at the end)."""
    daemon = Daemon(tmp_path / "home", daemon_env, tmp_path / "daemon.log")
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def daemon(new_daemon: Daemon) -> Daemon:
    return new_daemon.start()
