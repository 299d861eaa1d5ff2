"""Onboarding a dataset: from a source into a PersistentVolumeClaim that carries its
catalogue entry, and reading that entry back.

``add`` copies the source (a folder, a file, ``file://``, ``http(s)://``, ``s3://`` with the
usual ``AWS_*``/``S3_*`` settings, ``hf://`` from the local Hugging Face cache) into a
staging folder of the state directory while hashing it, reads the CSV/Parquet schemas, then
moves the folder into place and stores a PersistentVolume on it and a claim bound to it::

    metadata:
      name: iris
      labels: {datasets.wonderland.dev/dataset: "true"}
      annotations:
        datasets.wonderland.dev/digest: sha256:...
        datasets.wonderland.dev/size: "4551"
        datasets.wonderland.dev/files: "1"
        datasets.wonderland.dev/schema: '[{"path": "iris.csv", ...}]'
        datasets.wonderland.dev/source: ./data/iris

A source that cannot be read leaves nothing behind: no folder, no volume, no claim. Pods,
Notebooks, Jobs and TrainJobs mount the dataset by its name (``claimName``). Deleting the
claim deletes the data (the volume's reclaim policy is ``Delete``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from wonderland.datasets.catalog import Column, Contents, FileSchema, copy_and_digest
from wonderland.errors import NotFoundError, WonderlandError
from wonderland.workloads.storage import PROVISIONER

__all__ = [
    "A_DIGEST",
    "A_FILES",
    "A_SCHEMA",
    "A_SIZE",
    "A_SOURCE",
    "DATASET_LABEL",
    "Dataset",
    "DatasetError",
    "ObjectWriter",
    "add",
    "get",
    "is_dataset",
    "list_datasets",
    "resolve_source",
    "short_digest",
]

Obj = dict[str, Any]
PVCS = "persistentvolumeclaims"
PVS = "persistentvolumes"
_PREFIX = "datasets.wonderland.dev"
DATASET_LABEL = f"{_PREFIX}/dataset"
A_DIGEST = f"{_PREFIX}/digest"
A_SIZE = f"{_PREFIX}/size"
A_FILES = f"{_PREFIX}/files"
A_SCHEMA = f"{_PREFIX}/schema"
A_SOURCE = f"{_PREFIX}/source"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class DatasetError(WonderlandError):
    """A dataset that cannot be added or found: the source, the name or the platform."""


class ObjectWriter(Protocol):
    """Where the claim and volume go: the store in the daemon, or the control API."""

    def get(self, resource: str, namespace: str | None, name: str) -> Obj: ...

    def create(self, obj: Obj) -> Obj: ...

    def delete(self, resource: str, namespace: str | None, name: str) -> Any: ...

    def list(self, resource: str | None, namespace: str | None = None) -> tuple[list[Obj], str]: ...


def short_digest(digest: str) -> str:
    """The first 12 hex digits of a ``sha256:`` digest, as listings show it."""
    return digest.removeprefix("sha256:")[:12]


@dataclass(frozen=True)
class Dataset:
    """A dataset as its claim records it."""

    name: str
    namespace: str
    digest: str
    size: int
    files: int
    source: str
    schemas: tuple[FileSchema, ...]
    phase: str
    created: str

    @classmethod
    def from_claim(cls, pvc: Obj) -> Dataset:
        meta = pvc.get("metadata") or {}
        notes: Mapping[str, str] = meta.get("annotations") or {}
        try:
            raw = json.loads(notes.get(A_SCHEMA) or "[]")
        except ValueError:
            raw = []
        schemas = tuple(
            FileSchema(
                str(s.get("path", "")),
                str(s.get("format", "")),
                tuple(Column(str(c["name"]), str(c["type"])) for c in s.get("columns") or []),
                s.get("rows"),
                str(s.get("error", "")),
            )
            for s in raw
            if isinstance(s, dict)
        )
        return cls(
            name=meta.get("name", ""),
            namespace=meta.get("namespace", "default"),
            digest=notes.get(A_DIGEST, ""),
            size=_count(notes.get(A_SIZE)),
            files=_count(notes.get(A_FILES)),
            source=notes.get(A_SOURCE, ""),
            schemas=schemas,
            phase=str((pvc.get("status") or {}).get("phase") or "Pending"),
            created=meta.get("creationTimestamp", ""),
        )


def _count(value: str | None) -> int:
    """A number annotation; 0 when absent or edited into something else."""
    try:
        return int(value or 0)
    except ValueError:
        return 0


def is_dataset(pvc: Obj) -> bool:
    """Whether the claim is a dataset (labelled by ``add``)."""
    return ((pvc.get("metadata") or {}).get("labels") or {}).get(DATASET_LABEL) == "true"


def resolve_source(src: str, state_dir: Path, env: Mapping[str, str] | None = None) -> Path:
    """The local file or folder holding ``src`` (remote sources are fetched into the
    platform's download cache first)."""
    from wonderland.inference.storage import (
        StorageContext,
        StorageError,
        fetch,
        hf_snapshot,
        scheme_of,
    )

    env = dict(os.environ) if env is None else dict(env)
    scheme = scheme_of(src)
    if scheme in ("", "file"):
        path = Path(unquote(urlparse(src).path) if scheme == "file" else src).expanduser()
        if not path.exists():
            raise DatasetError(
                f"dataset source {src}: no such file or folder; give a folder, a file, "
                "http(s)://, s3:// or hf://"
            )
        if not os.access(path, os.R_OK):
            raise DatasetError(f"dataset source {src}: not readable by this user")
        return path.resolve()
    try:
        if scheme == "hf":
            rest = src[len("hf://") :]
            repo, _, revision = rest.partition(":")
            repo = repo.strip("/")
            if repo.startswith("datasets/"):
                repo = repo[len("datasets/") :]
            if repo.count("/") != 1:
                raise DatasetError(
                    f"dataset source {src}: expected hf://datasets/<org>/<name>[:<revision>]"
                )
            try:
                return hf_snapshot(src, repo, revision, env=env, repo_type="dataset")
            except StorageError:
                if rest.startswith("datasets/"):
                    raise
                # hf://<org>/<name> may name a model repository too
                return hf_snapshot(src, repo, revision, env=env, repo_type="model")
        ctx = StorageContext(state_dir, env=env)
        return fetch(src, ctx, refuse_remote_pickles=False)
    except StorageError as exc:
        raise DatasetError(str(exc).replace("storageUri ", "dataset source ", 1)) from None


def add(
    writer: ObjectWriter,
    state_dir: Path,
    name: str,
    src: str,
    namespace: str = "default",
    env: Mapping[str, str] | None = None,
) -> Dataset:
    """Onboard ``src`` as the dataset ``name`` (see the module docstring)."""
    if len(name) > 63 or not _NAME.match(name):
        raise DatasetError(
            f'dataset name "{name}": use lower-case letters, digits and "-", starting and '
            "ending with a letter or digit (at most 63), as for any claim"
        )
    try:
        writer.get(PVCS, namespace, name)
    except NotFoundError:
        pass
    else:
        raise DatasetError(
            f'a persistentvolumeclaim "{name}" already exists in namespace "{namespace}"; '
            f"pick another name or delete it first (`wonderland delete pvc {name}`)"
        )
    source = resolve_source(src, state_dir, env)
    if source.is_dir() and not any(p.is_file() for p in source.rglob("*")):
        raise DatasetError(f"dataset source {src}: the folder has no files")
    volume = f"dataset-{namespace}-{name}-{secrets.token_hex(3)}"[:253]
    root = state_dir / "volumes"
    staging = root / f".staging-{volume}"
    folder = root / volume
    try:
        contents = copy_and_digest(source, staging)
        staging.rename(folder)
    except BaseException as exc:
        # a read error, or Ctrl-C during a long copy: nothing half-copied stays
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            raise DatasetError(f"dataset source {src}: copying failed: {exc}") from None
        raise
    try:
        writer.create(_volume(volume, folder, contents, namespace, name))
        try:
            claim = writer.create(_claim(name, namespace, volume, contents, src))
        except BaseException:
            writer.delete(PVS, None, volume)
            raise
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Dataset.from_claim(claim)


def _quantity(size: int) -> str:
    """The request for ``size`` bytes: whole Ki, at least 1Ki."""
    return f"{max(1, -(-size // 1024))}Ki"


def _volume(volume: str, folder: Path, contents: Contents, namespace: str, name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume,
            "labels": {DATASET_LABEL: "true"},
            # made by the local-path provisioner's rules: reclaimed (deleted) with its claim
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": _quantity(contents.size)},
            "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "",
            "volumeMode": "Filesystem",
            "hostPath": {"path": str(folder), "type": "Directory"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": namespace,
                "name": name,
            },
        },
    }


def _claim(name: str, namespace: str, volume: str, contents: Contents, src: str) -> Obj:
    schema = [
        {
            "path": s.path,
            "format": s.format,
            "columns": [{"name": c.name, "type": c.type} for c in s.columns],
            **({"rows": s.rows} if s.rows is not None else {}),
            **({"error": s.error} if s.error else {}),
        }
        for s in contents.schemas
    ]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {DATASET_LABEL: "true"},
            "annotations": {
                A_DIGEST: contents.digest,
                A_SIZE: str(contents.size),
                A_FILES: str(contents.files),
                A_SCHEMA: json.dumps(schema, separators=(",", ":")),
                A_SOURCE: src,
            },
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": volume,
            "resources": {"requests": {"storage": _quantity(contents.size)}},
        },
    }


def get(writer: ObjectWriter, namespace: str, name: str) -> Dataset:
    """The dataset ``name``; NotFoundError when there is none (or the claim is no dataset)."""
    try:
        pvc = writer.get(PVCS, namespace, name)
    except NotFoundError:
        pvc = None
    if pvc is None or not is_dataset(pvc):
        raise NotFoundError(
            f'dataset "{name}" not found in namespace "{namespace}"; '
            "`wonderland get datasets` lists them, `wonderland data add NAME SRC` adds one"
        )
    return Dataset.from_claim(pvc)


def list_datasets(writer: ObjectWriter, namespace: str | None) -> list[Dataset]:
    """Every dataset of ``namespace`` (all namespaces when None), by name."""
    items, _ = writer.list(PVCS, namespace)
    return [Dataset.from_claim(p) for p in items if is_dataset(p)]
