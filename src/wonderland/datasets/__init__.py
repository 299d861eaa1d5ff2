"""Datasets: onboarded into PersistentVolumeClaims that carry their catalogue entry
(digest, size, files, CSV/Parquet schema, source); see docs/notebooks.md#datasets."""

from __future__ import annotations

from wonderland.datasets.catalog import Column, FileSchema
from wonderland.datasets.onboard import (
    DATASET_LABEL,
    Dataset,
    DatasetError,
    ObjectWriter,
    add,
    get,
    list_datasets,
    resolve_source,
)

__all__ = [
    "DATASET_LABEL",
    "Column",
    "Dataset",
    "DatasetError",
    "FileSchema",
    "ObjectWriter",
    "add",
    "get",
    "list_datasets",
    "resolve_source",
]
