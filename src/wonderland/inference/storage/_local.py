"""Local paths, ``file://`` and ``pvc://`` (a claim is a folder under the state dir)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from wonderland.errors import WonderlandError
from wonderland.inference.storage._base import StorageContext, StorageError

__all__ = ["LocalStorage", "PVCStorage", "pvc_root"]


def pvc_root(ctx: StorageContext, namespace: str, claim: str) -> Path:
    """The local folder that stands for PersistentVolumeClaim ``claim`` in ``namespace``."""
    return ctx.state_dir / "volumes" / namespace / claim


class LocalStorage:
    """A path on this machine, used in place (as KServe uses ``file://`` and local paths)."""

    def fetch(self, uri: str, ctx: StorageContext) -> Path:
        raw = uri
        if uri.lower().startswith("file://"):
            raw = unquote(uri[len("file://") :])
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        if not path.exists():
            raise StorageError(
                f"storageUri {uri}: {path} does not exist; copy the model there or fix the "
                "path (relative paths start at the folder `wonderland up` runs in)"
            )
        return path


class PVCStorage:
    """``pvc://<claim>/<path>``: the folder of the PersistentVolume the claim is bound to
    (``<state_dir>/volumes/<namespace>/<claim>/<path>`` where no store is at hand)."""

    def fetch(self, uri: str, ctx: StorageContext) -> Path:
        rest = uri[len("pvc://") :]
        claim, _, sub = rest.partition("/")
        if not claim:
            raise StorageError(f"storageUri {uri}: expected pvc://<claim-name>/<path>")
        if ctx.claims is not None:
            try:
                root = ctx.claims(ctx.namespace, claim)
            except WonderlandError as exc:
                raise StorageError(f"storageUri {uri}: {exc}") from None
        else:
            root = pvc_root(ctx, ctx.namespace, claim)
        path = (root / sub).resolve() if sub else root
        if not path.is_relative_to(root.resolve()):
            raise StorageError(f"storageUri {uri}: the path leaves the claim's folder")
        if not root.exists():
            raise StorageError(
                f"storageUri {uri}: no volume for PersistentVolumeClaim {claim!r} in namespace "
                f"{ctx.namespace!r}; its folder is {root}; create it and copy the model there"
            )
        if not path.exists():
            raise StorageError(
                f"storageUri {uri}: {path} does not exist in the volume of claim {claim!r}; "
                "copy the model there"
            )
        return path
