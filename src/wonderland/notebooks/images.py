"""The Kubeflow notebook images, mapped to programs on this machine.

A Notebook names an image of Kubeflow's notebook-server families; no image is pulled:

- ``jupyter*`` (``kubeflownotebookswg/jupyter-scipy``, ``.../jupyter-pytorch-full``,
  ``ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-*``): JupyterLab from the platform's
  Python environment (the ``wonderland[notebook]`` extra), started as the image's s6 script
  starts it (``--ServerApp.base_url=$NB_PREFIX``), on the port the controller gives;
- ``codeserver*``: ``code-server`` when it is on ``PATH``;
- ``rstudio*``: not provided here.

A ``wonderland.yaml`` build entry for the same name takes precedence, as for any image;
an image of none of these families without a ``command`` waits in ``ErrImagePull`` with
the entry to add.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

from wonderland.runtime.images import BuildError, BuiltImage, image_base_name

__all__ = ["NotebookImageProvider", "family"]

_REGISTRIES = ("kubeflownotebookswg/", "ghcr.io/kubeflow/kubeflow/notebook-servers/")
JUPYTER_ARGV = (
    "-m",
    "jupyterlab",
    "--no-browser",
    "--allow-root",
    "--ip=127.0.0.1",
    "--port=$(PORT)",
    "--ServerApp.base_url=$(NB_PREFIX)",
    "--ServerApp.allow_origin=*",
    "--ServerApp.allow_remote_access=True",
    "--ServerApp.authenticate_prometheus=False",
)


def family(image: str) -> str | None:
    """``jupyter``, ``codeserver`` or ``rstudio`` for a Kubeflow notebook image, else None."""
    name = image_base_name(image)
    for registry in _REGISTRIES:
        if name.startswith(registry):
            rest = name[len(registry) :]
            for kind in ("jupyter", "codeserver", "rstudio"):
                if rest.startswith(kind):
                    return kind
    return None


class NotebookImageProvider:
    """An :class:`~wonderland.runtime.images.ImageProvider` for the notebook images."""

    def __init__(self) -> None:
        self.prefix = Path(sys.prefix)

    def provide(self, image: str) -> BuiltImage | None:
        kind = family(image)
        if kind is None:
            return None
        env: tuple[tuple[str, str], ...] = (("VIRTUAL_ENV", str(self.prefix)),)
        if kind == "jupyter":
            if importlib.util.find_spec("jupyterlab") is None:
                raise BuildError(
                    f'image "{image}" runs JupyterLab from this machine\'s Python environment '
                    f"({self.prefix}), which lacks it: pip install 'wonderland[notebook]'"
                )
            argv: tuple[str, ...] = (sys.executable, *JUPYTER_ARGV)
        elif kind == "codeserver":
            binary = shutil.which("code-server")
            if binary is None:
                raise BuildError(
                    f'image "{image}" runs code-server, which is not on PATH here: install it '
                    "(https://coder.com/docs/code-server/install) or map the image in "
                    "wonderland.yaml"
                )
            argv = (binary, "--bind-addr=127.0.0.1:$(PORT)", "--auth=none", "--disable-telemetry")
        else:
            raise BuildError(
                f'image "{image}": RStudio Server is not provided on one machine; map the image '
                "to an environment in wonderland.yaml and give the container a command"
            )
        return BuiltImage(
            image=image, context=self.prefix, argv=argv, env=env, venv=self.prefix, pod_workdir=True
        )
