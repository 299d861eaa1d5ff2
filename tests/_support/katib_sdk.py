"""The Katib SDK (``kubeflow-katib`` 0.19) in its own environment, ``.venv-katib``
(``make katib-sdk``): it pins protobuf<5, which the platform's environment cannot take."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

__all__ = ["KATIB_PYTHON", "katib_python", "run_katib_script", "run_katib_sdk"]

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


def run_katib_sdk(
    script: str, kubeconfig: Path, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with the Katib SDK's interpreter against the daemon of ``kubeconfig``.
    The script is written to a file first: ``KatibClient.tune`` reads the objective
    function's source with ``inspect.getsource``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WONDERLAND_", "KUBECONFIG"))}
    env["KUBECONFIG"] = str(kubeconfig)
    digest = hashlib.sha256(script.encode()).hexdigest()[:12]
    path = kubeconfig.parent / f"katib-script-{digest}.py"
    path.write_text(script)
    return subprocess.run(
        [str(katib_python()), str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
