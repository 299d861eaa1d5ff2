"""``storageUri`` schemes: where a model comes from, resolved to a local folder.

One registry keyed by scheme (``s3``, ``http``, ``pvc`` ...), as KServe's storage
initializer handles them (see docs/inference-service.md). Downloads are verified (byte
count, and the S3 MD5 ETag where it is one), written atomically and cached by content
digest under ``<state_dir>/models``, so a second InferenceService, a restart or a replica
that scales from zero finds the model on disk::

    from wonderland.inference.storage import StorageContext, fetch

    path = fetch("s3://models/iris", StorageContext(state_dir=Path("~/.wonderland/state")))
"""

from __future__ import annotations

from wonderland.inference.storage._base import (
    ALLOW_REMOTE_PICKLE,
    SCHEMES,
    Progress,
    StorageBackend,
    StorageContext,
    StorageError,
    fetch,
    register,
    scheme_of,
)

__all__ = [
    "ALLOW_REMOTE_PICKLE",
    "SCHEMES",
    "Progress",
    "StorageBackend",
    "StorageContext",
    "StorageError",
    "fetch",
    "register",
    "scheme_of",
]
