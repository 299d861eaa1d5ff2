"""What an initializer reads from its environment, as Kubeflow Trainer's do, and the path
patterns it filters with."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import PurePosixPath
from typing import Literal

from wonderland.errors import WonderlandError
from wonderland.inference.storage import redact, scheme_of

__all__ = [
    "DATASET_PATH",
    "MODEL_ALLOW_PATTERNS",
    "MODEL_IGNORE_PATTERNS",
    "MODEL_PATH",
    "SCHEMES",
    "WORKSPACE_PATH",
    "InitializerConfig",
    "InitializerError",
    "Kind",
    "load_config",
    "matches",
]

Kind = Literal["dataset", "model"]

# Upstream's paths (pkg/initializers/utils/utils.py); the SDK exports the same two as
# kubeflow.trainer.DATASET_PATH and MODEL_PATH, and training code hard-codes them.
WORKSPACE_PATH = PurePosixPath("/workspace")
DATASET_PATH = WORKSPACE_PATH / "dataset"
MODEL_PATH = WORKSPACE_PATH / "model"

# hf:// models: only these files (pkg/initializers/model/huggingface.py), and by default
# not these (types.HuggingFaceModelInitializer), as upstream passes them to
# huggingface_hub.snapshot_download.
MODEL_ALLOW_PATTERNS = ("*.json", "*.safetensors", "*.model", "*.txt", "*.gguf")
MODEL_IGNORE_PATTERNS = ("*.msgpack", "*.h5", "*.bin", "*.pt", "*.pth")

# What STORAGE_URI may start with ("" is a plain path). Upstream knows hf, s3 and, for
# datasets, cache; the others are this platform's, from the storage registry.
SCHEMES = ("hf", "s3", "http", "https", "file", "pvc", "")


class InitializerError(WonderlandError):
    """The initializer cannot do its work: bad configuration, a missing source, an
    unreachable server. The message says what, where and what to do."""


@dataclass(frozen=True)
class InitializerConfig:
    """The variables upstream's initializers read (the config field in upper case):
    ``STORAGE_URI``, ``IGNORE_PATTERNS`` (comma-separated), ``ACCESS_TOKEN`` (hf),
    ``ENDPOINT``, ``ACCESS_KEY_ID``, ``SECRET_ACCESS_KEY``, ``REGION``, ``ROLE_ARN`` (s3).
    An empty variable counts as unset, as upstream's ``get_config_from_env`` has it."""

    kind: Kind
    storage_uri: str
    ignore_patterns: tuple[str, ...] | None = None
    access_token: str | None = field(default=None, repr=False)
    endpoint: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    region: str | None = None
    role_arn: str | None = None

    @property
    def scheme(self) -> str:
        """``hf``, ``s3``, ``http``, ... or ``""`` for a plain path."""
        return scheme_of(self.storage_uri)

    @property
    def shown_uri(self) -> str:
        """The URI fit for logs: no user:password, no signed query."""
        return redact(self.storage_uri)


def load_config(kind: Kind, env: Mapping[str, str]) -> InitializerConfig:
    """The configuration in ``env``; a missing ``STORAGE_URI`` or a scheme this machine
    cannot serve is an InitializerError (before anything is written)."""

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    uri = get("STORAGE_URI")
    field_path = f"spec.initializer.{kind}.storageUri"
    if uri is None:
        raise InitializerError(
            f"STORAGE_URI environment variable must be set (the TrainJob's {field_path}); "
            f"use {_supported(kind)}"
        )
    raw_patterns = get("IGNORE_PATTERNS")
    patterns = (
        tuple(p.strip() for p in raw_patterns.split(",") if p.strip()) if raw_patterns else None
    )
    config = InitializerConfig(
        kind=kind,
        storage_uri=uri,
        ignore_patterns=patterns or None,
        access_token=get("ACCESS_TOKEN"),
        endpoint=get("ENDPOINT"),
        access_key_id=get("ACCESS_KEY_ID"),
        secret_access_key=get("SECRET_ACCESS_KEY"),
        region=get("REGION"),
        role_arn=get("ROLE_ARN"),
    )
    scheme = config.scheme
    if scheme == "cache" and kind == "dataset":
        raise InitializerError(
            f"storageUri {config.shown_uri}: cache:// starts Kubeflow's distributed data "
            "cache (a LeaderWorkerSet of cache servers in front of an Iceberg table), which "
            "this platform does not run; export the table to files (Parquet, CSV, JSON "
            f"lines) and point {field_path} at them with {_supported(kind)}"
        )
    if scheme not in SCHEMES:
        raise InitializerError(
            f"Unsupported {kind} storage URI scheme {scheme!r} in STORAGE_URI "
            f"{config.shown_uri}: expected {_supported(kind)}"
        )
    return config


def _supported(kind: Kind) -> str:
    names = ", ".join(f"{s}://" for s in SCHEMES if s)
    return f"{names} or a local path"


def matches(path: str, patterns: Iterable[str]) -> bool:
    """Whether ``path`` (``/``-separated) matches one of ``patterns`` as huggingface_hub
    matches them: case-sensitive ``fnmatch``, ``*`` crosses ``/``, a pattern that ends
    with ``/`` stands for everything below that folder."""
    path = path.replace("\\", "/")
    for pattern in patterns:
        pattern = pattern.replace("\\", "/")
        if pattern.endswith("/"):
            pattern += "*"
        if fnmatchcase(path, pattern):
            return True
    return False
