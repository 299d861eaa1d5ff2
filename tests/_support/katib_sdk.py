"""The Katib SDK (``kubeflow-katib`` 0.19) in its own environment, ``.venv-katib``
(``make katib-sdk``): it pins protobuf<5, which the platform's environment cannot take."""

from __future__ import annotations

import subprocess
from pathlib import Path

from _support.client_venvs import ClientVenv

__all__ = ["KATIB", "KATIB_PYTHON", "katib_python", "run_katib_script", "run_katib_sdk"]

KATIB = ClientVenv(".venv-katib", "katib-sdk", "Katib SDK")
KATIB_PYTHON = KATIB.python_path


def katib_python() -> Path:
    return KATIB.python()


def run_katib_script(
    script: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return KATIB.run_script(script, env, timeout)


def run_katib_sdk(
    script: str, kubeconfig: Path, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return KATIB.run_against(script, kubeconfig, timeout)
