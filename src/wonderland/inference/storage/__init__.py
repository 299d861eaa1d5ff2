"""``storageUri`` schemes: where a model comes from, resolved to a local folder.

One registry keyed by scheme (``s3``, ``http``, ``pvc`` ...), as KServe's storage
initializer handles them (see docs/inference-service.md). Downloads are verified (byte
count, and the S3 MD5 ETag where it is one), written atomically and cached by content
digest under ``<state_dir>/models``, so a second InferenceService, a restart or a replica
that scales from zero finds the model on disk::

    from wonderland.inference.storage import StorageContext, fetch

    path = fetch("s3://models/iris", StorageContext(state_dir=Path("~/.wonderland/state")))

Programs that copy files rather than serve them (the TrainJob initializers) build on the
same parts: ``S3Prefix`` (list a prefix, verified downloads, errors that name the
settings to check), ``hf_snapshot`` (a repository of the local hub cache, models or
datasets) and ``fetch(..., refuse_remote_pickles=False)``.
"""

from __future__ import annotations

from wonderland.inference.storage._base import (
    ALLOW_REMOTE_PICKLE,
    PICKLE_SUFFIXES,
    SCHEMES,
    Progress,
    StorageBackend,
    StorageContext,
    StorageError,
    fetch,
    redact,
    register,
    scheme_of,
)
from wonderland.inference.storage._hf import hf_cache_dir, hf_snapshot
from wonderland.inference.storage._s3 import S3Object, S3Prefix

__all__ = [
    "ALLOW_REMOTE_PICKLE",
    "PICKLE_SUFFIXES",
    "SCHEMES",
    "Progress",
    "S3Object",
    "S3Prefix",
    "StorageBackend",
    "StorageContext",
    "StorageError",
    "fetch",
    "hf_cache_dir",
    "hf_snapshot",
    "redact",
    "register",
    "scheme_of",
]
