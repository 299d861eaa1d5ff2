"""The images Kubeflow Trainer's runtimes name, mapped to Python environments on this machine.

No image is pulled: a framework's runtime image runs in the platform's own Python
environment (its ``bin`` first on ``PATH``, so ``python``, ``torchrun`` and the SDK's
generated ``bash -c ... torchrun`` find the interpreter that has the framework), provided
that environment has the framework; otherwise the pod waits in ``ErrImagePull`` with what
to install. The initializer images run the platform's initializer programs. A
``wonderland.yaml`` build entry for the same image name takes precedence, as for any image.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from wonderland.runtime.images import BuildError, BuiltImage, image_base_name

__all__ = ["FRAMEWORK_IMAGES", "FrameworkImage", "TrainingImageProvider"]


@dataclass(frozen=True)
class FrameworkImage:
    """An image name (tag and registry defaults dropped) and what running it needs here."""

    name: str
    modules: tuple[str, ...]
    install: str
    argv: tuple[str, ...] = ()


_INITIALIZER = ("-m", "wonderland.training.initializers")

FRAMEWORK_IMAGES: tuple[FrameworkImage, ...] = (
    FrameworkImage("pytorch/pytorch", ("torch",), "pip install 'wonderland[training]'"),
    FrameworkImage("nvcr.io/nvidia/pytorch", ("torch",), "pip install 'wonderland[training]'"),
    FrameworkImage(
        "ghcr.io/kubeflow/trainer/torchtune-trainer",
        ("torch", "torchtune"),
        "pip install 'wonderland[training]' torchtune torchao",
    ),
    FrameworkImage(
        "ghcr.io/kubeflow/trainer/deepspeed-runtime",
        ("torch", "deepspeed"),
        "pip install 'wonderland[training]' deepspeed, and Open MPI (apt-get install openmpi-bin)",
    ),
    FrameworkImage(
        "ghcr.io/kubeflow/trainer/mlx-runtime",
        ("mlx",),
        "pip install mlx (Apple silicon), and Open MPI",
    ),
    FrameworkImage("nvcr.io/nvidia/jax", ("jax",), "pip install jax"),
    FrameworkImage("ghcr.io/kubeflow/trainer/xgboost-runtime", ("xgboost",), "pip install xgboost"),
    FrameworkImage(
        "ghcr.io/kubeflow/trainer/dataset-initializer", (), "", (*_INITIALIZER, "dataset")
    ),
    FrameworkImage("ghcr.io/kubeflow/trainer/model-initializer", (), "", (*_INITIALIZER, "model")),
)


class TrainingImageProvider:
    """An :class:`~wonderland.runtime.images.ImageProvider` for the runtimes' images."""

    def __init__(
        self, images: tuple[FrameworkImage, ...] = FRAMEWORK_IMAGES, home: Path | None = None
    ) -> None:
        self.images = {image.name: image for image in images}
        self.prefix = Path(sys.prefix)
        # The platform's state directory, for the programs the platform provides (the
        # initializers keep their download cache there, beside the models' cache).
        self.home = home

    def provide(self, image: str) -> BuiltImage | None:
        known = self.images.get(image_base_name(image))
        if known is None:
            return None
        missing = [m for m in known.modules if importlib.util.find_spec(m) is None]
        if missing:
            raise BuildError(
                f'image "{image}" runs in this machine\'s Python environment ({self.prefix}), '
                f"which lacks {', '.join(missing)}: {known.install}"
            )
        argv = (sys.executable, *known.argv) if known.argv else ()
        env: tuple[tuple[str, str], ...] = (("VIRTUAL_ENV", str(self.prefix)),)
        if known.argv and self.home is not None:
            env = (*env, ("WONDERLAND_HOME", str(self.home)))
        return BuiltImage(
            image=image,
            context=self.prefix,
            argv=argv,
            env=env,
            venv=self.prefix,
            pod_workdir=True,
        )
