"""kubectl against a test daemon: one runner every area's end-to-end tests share."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

__all__ = ["Kubectl", "kubectl_for"]

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
