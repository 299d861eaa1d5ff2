"""The scheme registry, the download cache and the errors shared by every backend."""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from wonderland.errors import WonderlandError

__all__ = [
    "ALLOW_REMOTE_PICKLE",
    "PICKLE_SUFFIXES",
    "SCHEMES",
    "Progress",
    "StorageBackend",
    "StorageContext",
    "StorageError",
    "fetch",
    "redact",
    "register",
    "scheme_of",
]

log = logging.getLogger("wonderland.inference.storage")

# (namespace, claim) -> the folder of the PersistentVolume the claim is bound to.
ClaimResolver = Callable[[str, str], Path]
# (what, bytes done, total bytes or None) - called often while a download runs.
Progress = Callable[[str, int, "int | None"], None]


class StorageError(WonderlandError):
    """A ``storageUri`` cannot be resolved: unsupported, missing, unreachable or corrupt."""


@dataclass(frozen=True)
class StorageContext:
    """What a backend may use: the state directory (cache, pvc volumes), the namespace of
    the InferenceService, its annotations (``serving.kserve.io/s3-*``) and environment
    (``AWS_*``, ``S3_*``), and a progress callback."""

    state_dir: Path
    namespace: str = "default"
    annotations: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    progress: Progress | None = None
    # The folder of a bound PersistentVolumeClaim (namespace, claim), where the platform's
    # store is at hand; without it pvc:// uses <state_dir>/volumes/<namespace>/<claim>.
    claims: ClaimResolver | None = None

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "models"


class StorageBackend(Protocol):
    """One scheme: turn a URI into a local file or folder (downloading it if needed)."""

    def fetch(self, uri: str, ctx: StorageContext) -> Path: ...


# scheme -> "module:Class" (imported on first use, so boto3 loads only for s3://).
SCHEMES: dict[str, str] = {
    "": "wonderland.inference.storage._local:LocalStorage",
    "file": "wonderland.inference.storage._local:LocalStorage",
    "pvc": "wonderland.inference.storage._local:PVCStorage",
    "http": "wonderland.inference.storage._http:HTTPStorage",
    "https": "wonderland.inference.storage._http:HTTPStorage",
    "s3": "wonderland.inference.storage._s3:S3Storage",
    "hf": "wonderland.inference.storage._hf:HFCacheStorage",
    "models": "wonderland.inference.storage._mlflow:MlflowStorage",
    "runs": "wonderland.inference.storage._mlflow:MlflowStorage",
    "mlflow-artifacts": "wonderland.inference.storage._mlflow:MlflowStorage",
}

# Loading a pickle runs whatever code it carries, so a pickle-based model that came from
# a remote URL is refused unless its owner opts in with this annotation set to "true".
ALLOW_REMOTE_PICKLE = "serving.wonderland.dev/allow-remote-pickle"
# Models from the tracking server's registry count as remote too.
_REMOTE_SCHEMES = ("http", "https", "s3", "models", "runs", "mlflow-artifacts")
# File names whose loaders unpickle (joblib, torch.load without weights_only).
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth")

# Schemes KServe accepts that one machine cannot serve: say so instead of "unknown".
_CLUSTER_ONLY = ("gs", "hdfs", "webhdfs", "oci", "oci+native", "oci+fetch", "modelscope")


def register(scheme: str, target: str) -> None:
    """Add or replace a scheme: ``target`` is ``"module:Class"`` (a StorageBackend)."""
    SCHEMES[scheme] = target


def scheme_of(uri: str) -> str:
    """``s3://b/k`` -> ``s3``; ``models:/m/1`` -> ``models``; a plain path -> ``""``."""
    head, sep, _ = uri.partition(":")
    if sep and "/" not in head and len(head) > 1:
        return head.lower()
    return ""


def fetch(uri: str, ctx: StorageContext, *, refuse_remote_pickles: bool = True) -> Path:
    """The local file or folder holding the model at ``uri`` (downloaded and cached).

    A pickle from a remote scheme is refused (see ``ALLOW_REMOTE_PICKLE``) unless
    ``refuse_remote_pickles`` is false: callers that only copy files and never load them
    (TrainJob initializers) pass false."""
    uri = uri.strip()
    if not uri:
        raise StorageError("storageUri is empty; give a path, file://, pvc://, s3://, http(s)://")
    scheme = scheme_of(uri)
    target = SCHEMES.get(scheme)
    if target is None:
        if scheme in _CLUSTER_ONLY:
            raise StorageError(
                f"storageUri {uri}: {scheme}:// needs a cluster's storage initializer; on one "
                "machine copy the model to a local folder, an S3-compatible bucket or an "
                "http(s) server and point storageUri there"
            )
        known = ", ".join(f"{s}://" for s in sorted(SCHEMES) if s)
        raise StorageError(
            f"storageUri {uri}: unknown scheme {scheme!r}; use a local path or one of {known}"
        )
    module, _, attr = target.partition(":")
    backend: StorageBackend = getattr(importlib.import_module(module), attr)()
    path = backend.fetch(uri, ctx)
    if refuse_remote_pickles and scheme in _REMOTE_SCHEMES:
        _refuse_remote_pickles(uri, path, ctx)
    return path


def _refuse_remote_pickles(uri: str, path: Path, ctx: StorageContext) -> None:
    if ctx.annotations.get(ALLOW_REMOTE_PICKLE, "").strip().lower() == "true":
        return
    if path.is_dir():
        # An MLflow model: what its served flavour loads decides (model.skops is no pickle)
        from wonderland.inference.errors import ModelConfigError
        from wonderland.inference.mlmodel import code_loading, read_mlmodel

        try:
            mlmodel = read_mlmodel(path)
            why = code_loading(mlmodel) if mlmodel is not None else None
        except ModelConfigError as exc:
            raise StorageError(f"storageUri {redact(uri)}: {exc}") from None
        if why is not None:
            raise StorageError(
                f"storageUri {redact(uri)}: this MLflow model runs code when loaded ({why}); "
                "a model from a remote source is loaded that way only on request: annotate "
                f'the InferenceService with {ALLOW_REMOTE_PICKLE}: "true" if you trust its '
                "source, or log it in a safe format (mlflow.sklearn with the default "
                "serialization_format='skops', xgboost, lightgbm Booster, ONNX)"
            )
        if mlmodel is not None:
            return
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    pickles = [p.name for p in files if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise StorageError(
            f"storageUri {redact(uri)}: {pickles[0]} is a pickle, and loading a pickle runs "
            "any code it carries; a pickle from a remote URL is loaded only on request: "
            f'annotate the InferenceService with {ALLOW_REMOTE_PICKLE}: "true" if you trust '
            "its source, or ship the model as ONNX, xgboost .json/.ubj or lightgbm .txt"
        )


# -- the cache --------------------------------------------------------------------------


def redact(uri: str) -> str:
    """``uri`` fit for messages and logs: no user:password, no query (signed URL tokens)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def uri_key(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:32]


def read_ref(ctx: StorageContext, uri: str) -> dict[str, str] | None:
    """What the cache remembers about ``uri`` (digest, validators), if its blob is there."""
    path = ctx.cache_dir / "refs" / f"{uri_key(uri)}.json"
    try:
        ref = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(ref, dict) or ref.get("uri") != uri:
        return None
    if not blob_path(ctx, str(ref.get("digest", ""))).exists():
        return None
    return {str(k): str(v) for k, v in ref.items()}


def write_ref(ctx: StorageContext, uri: str, ref: Mapping[str, str]) -> None:
    refs = ctx.cache_dir / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    tmp = refs / f".{uri_key(uri)}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({**ref, "uri": uri}))
    tmp.replace(refs / f"{uri_key(uri)}.json")


def blob_path(ctx: StorageContext, digest: str) -> Path:
    return ctx.cache_dir / "blobs" / digest


def staging_dir(ctx: StorageContext) -> Path:
    """A fresh folder on the cache's file system (so the final rename is atomic)."""
    base = ctx.cache_dir / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=base))


def commit_blob(ctx: StorageContext, digest: str, staged: Path) -> Path:
    """Move a staged folder into the cache under ``digest`` (first writer wins)."""
    final = blob_path(ctx, digest)
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        staged.rename(final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(staged, ignore_errors=True)
    return final


ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".tar.bz2", ".tar.xz")


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def unpack(archive: Path, dest: Path, uri: str) -> None:
    """Unpack a tar or zip archive into ``dest``, refusing entries that leave it."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                root = dest.resolve()
                for member in zf.namelist():
                    if not (dest / member).resolve().is_relative_to(root):
                        raise StorageError(f"{uri}: archive entry {member!r} leaves its folder")
                zf.extractall(dest)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(dest, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise StorageError(f"{uri}: cannot unpack {archive.name}: {exc}") from None
