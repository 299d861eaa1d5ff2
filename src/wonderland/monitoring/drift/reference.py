"""The reference sample a drift detector compares live inputs with.

``storageUri`` goes through the platform's storage layer (``file://``, ``pvc://``,
``models:/``, ``runs:/``, ``mlflow-artifacts:``, ``s3://``, ``http(s)://``) to a file or a
folder. A folder holds one ``reference.csv``, ``reference.npy`` or ``reference.parquet``
(or exactly one file of those kinds). CSV has a header row of column names; a name may
declare its type as ``name:numeric`` or ``name:categorical`` (otherwise inferred,
:func:`~wonderland.monitoring.drift.stats.infer_kind`). NPY (a 2-D array) has no names: the
columns are named by ``--feature_names`` or ``0``, ``1``, ... Parquet needs ``pyarrow``.

A ``models:/NAME@ALIAS/...`` URI is pinned to the version the alias names
(:class:`ReferenceSource`), so the detector knows which version's sample it compares with
and can re-resolve the alias later (``--reference_refresh``).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from wonderland.errors import WonderlandError
from wonderland.monitoring.drift.stats import FeatureKind, infer_kind
from wonderland.tracking.access import TRACKING_URI_ENV
from wonderland.tracking.resolve import resolve_version
from wonderland.tracking.uris import ModelUri, is_tracking_uri, parse

__all__ = ["Reference", "ReferenceError", "ReferenceSource", "load_reference", "read_reference"]

SUFFIXES = (".csv", ".npy", ".parquet")


class ReferenceError(WonderlandError):
    """The reference sample cannot be read or does not fit the model's inputs."""


@dataclass(frozen=True)
class Reference:
    """Columns in order, their values and types, and where they came from (``version``:
    the registered model version whose sample it is, "" when not from the registry)."""

    uri: str
    columns: tuple[str, ...]
    values: Mapping[str, Sequence[Any]]
    kinds: Mapping[str, FeatureKind]
    version: str = ""

    @property
    def rows(self) -> int:
        return len(self.values[self.columns[0]]) if self.columns else 0


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _from_csv(text: str, uri: str) -> tuple[list[str], dict[str, list[Any]], dict[str, str]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ReferenceError(f"reference {uri} is empty; give a CSV with a header row") from None
    names: list[str] = []
    declared: dict[str, str] = {}
    for raw in header:
        name, _, kind = raw.strip().partition(":")
        if kind and kind not in ("numeric", "categorical"):
            raise ReferenceError(
                f"reference {uri}: column {raw!r} declares type {kind!r}; "
                "use name:numeric or name:categorical"
            )
        names.append(name)
        if kind:
            declared[name] = kind
    if all(_number(n) != n for n in names if n):
        raise ReferenceError(
            f"reference {uri}: the first row {header} is numbers, not column names; add a "
            "header row naming the model's inputs"
        )
    values: dict[str, list[Any]] = {n: [] for n in names}
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(names):
            raise ReferenceError(
                f"reference {uri} line {line}: {len(row)} values, but the header names "
                f"{len(names)} columns"
            )
        for name, cell in zip(names, row, strict=True):
            values[name].append(_number(cell) if declared.get(name) != "categorical" else cell)
    return names, values, declared


def _from_array(arr: Any, uri: str, names: Sequence[str]) -> tuple[list[str], dict[str, list[Any]]]:
    arr = np.asarray(arr)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ReferenceError(f"reference {uri}: an array of shape {arr.shape}; give rows x columns")
    cols = list(names) or [str(i) for i in range(arr.shape[1])]
    if len(cols) != arr.shape[1]:
        raise ReferenceError(
            f"reference {uri} has {arr.shape[1]} columns but {len(cols)} feature names were "
            f"given ({', '.join(cols)})"
        )
    return cols, {c: arr[:, i].tolist() for i, c in enumerate(cols)}


def read_reference(
    path: Path,
    uri: str = "",
    feature_names: Sequence[str] = (),
    categorical: Sequence[str] = (),
) -> Reference:
    """The reference sample in ``path`` (a file, or a folder holding one)."""
    uri = uri or str(path)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES)
        named = [p for p in found if p.stem == "reference"]
        if len(named) == 1:
            path = named[0]
        elif len(found) == 1:
            path = found[0]
        else:
            raise ReferenceError(
                f"reference {uri} is a folder with {len(found)} sample files "
                f"({', '.join(p.name for p in found) or 'none'}); put one reference.csv, "
                "reference.npy or reference.parquet there"
            )
    declared: dict[str, str] = {}
    try:
        if path.suffix == ".npy":
            names, values = _from_array(np.load(path, allow_pickle=False), uri, feature_names)
        elif path.suffix == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise ReferenceError(
                    f"reference {uri} is Parquet, which needs pyarrow: pip install pyarrow, "
                    "or save the sample as CSV"
                ) from None
            table = pq.read_table(path)
            names = list(table.column_names)
            values = {n: table.column(n).to_pylist() for n in names}
        else:
            names, values, declared = _from_csv(path.read_text(), uri)
    except OSError as exc:
        raise ReferenceError(f"reference {uri}: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ReferenceError(f"reference {uri}: {exc}") from None
    if not names or not values[names[0]]:
        raise ReferenceError(f"reference {uri} has no rows; give a sample of the training data")
    unknown = [c for c in categorical if c not in names]
    if unknown:
        raise ReferenceError(
            f"--categorical_features names {', '.join(unknown)}, which the reference {uri} "
            f"lacks; its columns are {', '.join(names)}"
        )
    kinds: dict[str, FeatureKind] = {}
    for name in names:
        if name in categorical or declared.get(name) == "categorical":
            kinds[name] = "categorical"
        elif declared.get(name) == "numeric":
            kinds[name] = "numeric"
        else:
            kinds[name] = infer_kind(values[name])
    return Reference(uri, tuple(names), values, kinds)


def load_reference(
    uri: str,
    namespace: str = "default",
    feature_names: Sequence[str] = (),
    categorical: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Reference:
    """Fetch ``uri`` through the storage layer and read it (see the module docstring)."""
    from wonderland.inference.storage import StorageContext, StorageError, fetch

    env = dict(os.environ if env is None else env)
    home = Path(env.get("WONDERLAND_HOME") or "~/.wonderland").expanduser()
    try:
        # a sample is data, never unpickled: remote pickles need no refusal here
        path = fetch(
            uri,
            StorageContext(state_dir=home, namespace=namespace, env=env),
            refuse_remote_pickles=False,
        )
    except StorageError as exc:
        raise ReferenceError(f"reference sample: {exc}") from None
    return read_reference(path, uri, feature_names, categorical)


class ReferenceSource:
    """The ``--storage_uri`` of a detector: :meth:`load` reads it; a ``models:/NAME@ALIAS``
    URI is first pinned to the version the alias names (:meth:`resolve`, through the
    registry at ``MLFLOW_TRACKING_URI``), so a moved alias can be noticed and loaded."""

    def __init__(
        self,
        uri: str,
        namespace: str = "default",
        feature_names: Sequence[str] = (),
        categorical: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.uri = uri
        self.namespace = namespace
        self.feature_names = tuple(feature_names)
        self.categorical = tuple(categorical)
        self.env = dict(os.environ if env is None else env)
        self.model: ModelUri | None = None
        if is_tracking_uri(uri):
            try:
                parsed = parse(uri, "--storage_uri")
            except WonderlandError as exc:
                raise ReferenceError(f"reference sample: {exc}") from None
            if isinstance(parsed, ModelUri):
                self.model = parsed

    @property
    def follows_alias(self) -> bool:
        """Whether the URI names an alias, which the registry may move."""
        return self.model is not None and self.model.follows_alias

    def resolve(self) -> str:
        """The version the alias names now (a pinned ``models:/NAME/N`` URI: ``N``; other
        URIs: ""); :class:`ReferenceError` when the registry cannot say."""
        if self.model is None:
            return ""
        if not self.follows_alias:
            return self.model.version
        server = (self.env.get(TRACKING_URI_ENV) or "").strip()
        if not server:
            raise ReferenceError(
                f"reference {self.uri}: {TRACKING_URI_ENV} is not set, so there is no MLflow "
                f"registry to resolve the alias through; set {TRACKING_URI_ENV}"
            )
        try:
            return resolve_version(self.uri, server, timeout=10.0).version
        except WonderlandError as exc:
            raise ReferenceError(f"reference {self.uri}: {exc}") from None

    def load(self, version: str = "") -> Reference:
        """The sample of ``version`` (a following URI: the version the alias names now when
        not given), or the URI's own for any other URI."""
        uri = self.uri
        if self.model is not None and self.follows_alias:
            version = version or self.resolve()
            uri = str(self.model.pinned(version))
        elif self.model is not None:
            version = self.model.version
        reference = load_reference(
            uri, self.namespace, self.feature_names, self.categorical, env=self.env
        )
        return replace(reference, version=version)
