"""The drift detector's image: ``wonderland/drift-detector`` runs this machine's
``python -m wonderland.monitoring.drift`` (its args are the container's ``args``), as the
built-in runtimes' images run the platform's programs. On a cluster the same name is an
image built from the package (see docs/monitoring.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import wonderland
from wonderland.runtime.images import BuiltImage, image_base_name

__all__ = ["IMAGE", "DriftDetectorImageProvider"]

IMAGE = "wonderland/drift-detector"


class DriftDetectorImageProvider:
    """An :class:`~wonderland.runtime.images.ImageProvider` for :data:`IMAGE`."""

    def __init__(self, home: Path | None = None) -> None:
        self.prefix = Path(sys.prefix)
        self.home = home  # the state directory: the reference samples' download cache

    def provide(self, image: str) -> BuiltImage | None:
        if image_base_name(image) != IMAGE:
            return None
        # the daemon's own package, also when it runs from a source folder
        package_root = str(Path(wonderland.__file__).resolve().parent.parent)
        env: tuple[tuple[str, str], ...] = (
            ("VIRTUAL_ENV", str(self.prefix)),
            ("PYTHONPATH", package_root),
        )
        if self.home is not None:
            env = (*env, ("WONDERLAND_HOME", str(self.home)))
        return BuiltImage(
            image=image,
            context=self.prefix,
            argv=(sys.executable, "-m", "wonderland.monitoring.drift"),
            env=env,
            venv=self.prefix,
            pod_workdir=True,
        )
