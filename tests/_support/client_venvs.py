"""Official clients that cannot share the platform's environment (they pin older
``kubernetes`` or ``protobuf`` releases) live in virtualenvs of their own, made by a make
target; tests run scripts with their interpreters, as users run them from a notebook."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["ClientVenv"]

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ClientVenv:
    """The virtualenv ``REPO/<folder>`` that ``make <target>`` creates."""

    folder: str
    target: str
    what: str

    @property
    def python_path(self) -> Path:
        return REPO / self.folder / "bin" / "python"

    def python(self) -> Path:
        """The interpreter; the test skips without it (fails under CI=true)."""
        if not self.python_path.exists():
            missing = (
                f"the {self.what} environment {self.folder} is missing: run `make {self.target}`"
            )
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(missing)
            pytest.skip(missing)
        return self.python_path

    def run_script(
        self, script: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``script`` (``-c``); no ``WONDERLAND_*`` variables leak in."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("WONDERLAND_")}
        base.update(env or {})
        return subprocess.run(
            [str(self.python()), "-c", script],
            env=base,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def run_against(
        self, script: str, kubeconfig: Path, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        """Run ``script`` against the daemon of ``kubeconfig``. The script is written to a
        file first: the SDKs read a training or objective function's source
        (``inspect.getsource``)."""
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("WONDERLAND_", "KUBECONFIG"))
        }
        env["KUBECONFIG"] = str(kubeconfig)
        digest = hashlib.sha256(script.encode()).hexdigest()[:12]
        path = kubeconfig.parent / f"{self.target}-script-{digest}.py"
        path.write_text(script)
        return subprocess.run(
            [str(self.python()), str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
