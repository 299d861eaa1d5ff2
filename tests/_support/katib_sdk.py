"""The Katib SDK (``kubeflow-katib`` 0.19) in its own environment, ``.venv-katib``
(``make katib-sdk``): it pins protobuf<5, which the platform's environment cannot take."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

__all__ = ["KATIB_PYTHON", "katib_python", "run_katib_script"]

REPO = Path(__file__).resolve().parents[2]
KATIB_PYTHON = REPO / ".venv-katib" / "bin" / "python"
_MISSING = "the Katib SDK environment .venv-katib is missing: run `make katib-sdk`"


def katib_python() -> Path:
    """The interpreter of ``.venv-katib``; the test skips without it (fails under CI=true)."""
    if not KATIB_PYTHON.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(_MISSING)
        pytest.skip(_MISSING)
    return KATIB_PYTHON


def run_katib_script(
    script: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with the Katib SDK's interpreter (no ``WONDERLAND_*`` variables leak in)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("WONDERLAND_")}
    base.update(env or {})
    return subprocess.run(
        [str(katib_python()), "-c", script],
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
