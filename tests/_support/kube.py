"""kubectl against a test daemon: one runner every area's end-to-end tests share."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import Any, Self

import pytest

__all__ = ["KubeClientDaemon", "Kubectl", "kubectl_for"]

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def kubectl_for(daemon: Any, timeout: float = 90.0) -> Kubectl:
    """A function that runs ``kubectl ARGS`` with ``daemon``'s kubeconfig and environment
    (anything with ``home`` and ``env``), output captured; the test is skipped where
    kubectl is not installed."""
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, "--kubeconfig", str(daemon.home / "kubeconfig"), *args],
            env=daemon.env,
            capture_output=True,
            text=True,
            input=stdin,
            timeout=timeout,
            check=False,
        )

    return run


class KubeClientDaemon:
    """A scratch ``wonderland up`` in a temporary home, with the ``kubernetes`` client's
    CustomObjectsApi and CoreV1Api loaded from its kubeconfig (for benches): a context
    manager that stops the daemon, prints its log's tail on an error and removes the home."""

    def __init__(self, prefix: str) -> None:
        import tempfile
        from pathlib import Path

        from _support.daemon import WonderlandDaemon, daemon_env, free_port

        self.tmp = Path(tempfile.mkdtemp(prefix=prefix))
        env = daemon_env(self.tmp, gateway_port=free_port(), WONDERLAND_LOG_LEVEL="warning")
        self.daemon = WonderlandDaemon(self.tmp / "home", env, self.tmp / "daemon.log")

    def __enter__(self) -> Self:
        self.daemon.start()
        from kubernetes import client, config

        config.load_kube_config(str(self.daemon.home / "kubeconfig"))
        self.api = client.CustomObjectsApi()
        self.core = client.CoreV1Api()
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        self.daemon.stop()
        if kind is not None:
            print(self.daemon.log.read_text(errors="replace")[-4000:])
        shutil.rmtree(self.tmp, ignore_errors=True)
