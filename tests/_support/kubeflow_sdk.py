"""The Kubeflow SDK (``kubeflow`` 0.5) in its own environment, ``.venv-kubeflow``
(``make kubeflow-sdk``): it pins ``kubernetes<36``, which the platform's environment
cannot take. The training and tuning tests run their SDK scripts through it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from _support.client_venvs import ClientVenv

__all__ = ["KUBEFLOW", "KUBEFLOW_PYTHON", "kubeflow_python", "run_sdk"]

KUBEFLOW = ClientVenv(".venv-kubeflow", "kubeflow-sdk", "Kubeflow SDK")
KUBEFLOW_PYTHON = KUBEFLOW.python_path


def kubeflow_python() -> Path:
    return KUBEFLOW.python()


def run_sdk(
    script: str, kubeconfig: Path, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return KUBEFLOW.run_against(script, kubeconfig, timeout)
