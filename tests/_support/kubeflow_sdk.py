"""The Kubeflow SDK (``kubeflow`` 0.5) in its own environment, ``.venv-kubeflow``
(``make kubeflow-sdk``): it pins ``kubernetes<36``, which the platform's environment
cannot take. The training and tuning tests run their SDK scripts through it."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

__all__ = ["KUBEFLOW_PYTHON", "kubeflow_python", "run_sdk"]

REPO = Path(__file__).resolve().parents[2]
KUBEFLOW_PYTHON = REPO / ".venv-kubeflow" / "bin" / "python"
_MISSING = "the Kubeflow SDK environment is missing: run `make kubeflow-sdk`"


def kubeflow_python() -> Path:
    """The interpreter of ``.venv-kubeflow``; the test skips without it (fails under CI=true)."""
    if not KUBEFLOW_PYTHON.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(_MISSING)
        pytest.skip(_MISSING)
    return KUBEFLOW_PYTHON


def run_sdk(
    script: str, kubeconfig: Path, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with the SDK's interpreter against the daemon of ``kubeconfig``; the
    script is written to a file first, because the SDK reads a training function's source."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WONDERLAND_", "KUBECONFIG"))}
    env["KUBECONFIG"] = str(kubeconfig)
    digest = hashlib.sha256(script.encode()).hexdigest()[:12]
    path = kubeconfig.parent / f"sdk-script-{digest}.py"
    path.write_text(script)
    return subprocess.run(
        [str(kubeflow_python()), str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
