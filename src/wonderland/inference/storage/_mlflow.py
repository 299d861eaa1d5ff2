"""``models:/``, ``runs:/`` and ``mlflow-artifacts:/`` through the MLflow tracking server.

The server is ``MLFLOW_TRACKING_URI`` in the InferenceService's environment (the platform
sets it). A URI is resolved through the registry first (an alias or ``latest`` to a
version, a run path to the logged model), and the files are cached under
``<state_dir>/models`` by that *resolved* location: an alias moves, a version's files
never change. Downloads land atomically; a cached copy is reused.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from wonderland.errors import InvalidError
from wonderland.inference.storage._base import (
    StorageContext,
    StorageError,
    blob_path,
    commit_blob,
    read_ref,
    staging_dir,
    uri_key,
    write_ref,
)
from wonderland.tracking.access import TRACKING_URI_ENV

__all__ = ["TRACKING_URI_ENV", "MlflowStorage", "tracking_uri_of"]

log = logging.getLogger("wonderland.inference.storage")


def tracking_uri_of(uri: str, ctx: StorageContext) -> str:
    """The tracking server's URL, or a :class:`StorageError` naming the variable."""
    server = (ctx.env.get(TRACKING_URI_ENV) or "").strip()
    if not server:
        raise StorageError(
            f"storageUri {uri}: {TRACKING_URI_ENV} is not set, so there is no MLflow "
            "tracking server to resolve it through; run the platform with tracking enabled "
            f"(wonderland up sets {TRACKING_URI_ENV}) or set it in the predictor's env"
        )
    if not server.lower().startswith(("http://", "https://")):
        raise StorageError(
            f"storageUri {uri}: {TRACKING_URI_ENV}={server} is not the http(s) URL of a "
            "tracking server; models:/ and runs:/ are resolved through a server's REST API"
        )
    return server.rstrip("/")


class MlflowStorage:
    """Resolve through the registry, download through the artifact proxy, cache."""

    def fetch(self, uri: str, ctx: StorageContext) -> Path:
        from wonderland.tracking.client import (
            MlflowApiError,
            RestClient,
            TrackingError,
            TrackingUnavailable,
        )
        from wonderland.tracking.resolve import UnknownModel, download, resolve
        from wonderland.tracking.uris import parse

        server = tracking_uri_of(uri, ctx)
        try:
            parsed = parse(uri)
        except InvalidError as exc:
            raise StorageError(f"storageUri {exc.reason_text}") from None
        try:
            with RestClient(server) as client:
                resolved = resolve(client, parsed)
                key = f"mlflow|{server}|{resolved.location}"
                ref = read_ref(ctx, key)
                if ref is not None:
                    log.debug("%s: cached as %s", uri, ref["digest"])
                    return _path(blob_path(ctx, ref["digest"]), ref.get("file", ""))
                staging = staging_dir(ctx)
                try:
                    got = download(client, resolved, staging / "model")
                    rel = got.relative_to(staging / "model").as_posix()
                    rel = "" if rel == "." else rel
                    digest = "mlflow-" + uri_key(key)
                    final = commit_blob(ctx, digest, staging / "model")
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
                write_ref(
                    ctx,
                    key,
                    {
                        "digest": digest,
                        "file": rel,
                        "version": resolved.version_number,
                        "run_id": resolved.run_id,
                    },
                )
                if ctx.progress is not None:
                    ctx.progress(uri, _size(final), None)
                log.info(
                    "%s: version %s of run %s cached as %s",
                    uri,
                    resolved.version_number or "-",
                    resolved.run_id or "-",
                    digest,
                )
                return _path(final, rel)
        except UnknownModel as exc:
            raise StorageError(
                f"storageUri {uri}: the registry at {server} has no such model: {exc}; check "
                "the model's name, version or alias (and that it was registered)"
            ) from None
        except TrackingUnavailable as exc:
            raise StorageError(f"storageUri {uri}: {exc}") from None
        except MlflowApiError as exc:
            raise StorageError(
                f"storageUri {uri}: the tracking server at {server} refused: {exc}"
            ) from None
        except TrackingError as exc:
            raise StorageError(f"storageUri {uri}: {exc}") from None


def _path(folder: Path, rel: str) -> Path:
    return folder / rel if rel else folder


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
