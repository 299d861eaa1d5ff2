"""Export to a cluster: manifests checked offline against the upstream CRDs' schemas.

``wonderland export --check`` reads manifests and checks each object against the vendored
schemas of the pinned Knative Serving, KServe, Dapr, Kubeflow Trainer, Katib, JobSet and
Kubernetes releases (``schemas/manifest.json`` names them). ``wonderland export -o DIR``
writes the objects mapped for a cluster (:func:`export_objects`, a pure function) as a
kustomize tree and checks it.
"""

from __future__ import annotations

from wonderland.export.catalog import KindSchema, SchemaCatalog, SchemaSource, default_catalog
from wonderland.export.check import CheckReport, Finding, check_manifests, check_paths
from wonderland.export.tree import (
    PROFILES,
    ExportTree,
    LocalImage,
    Note,
    Profile,
    SourceObject,
    export_objects,
)

__all__ = [
    "PROFILES",
    "CheckReport",
    "ExportTree",
    "Finding",
    "KindSchema",
    "LocalImage",
    "Note",
    "Profile",
    "SchemaCatalog",
    "SchemaSource",
    "SourceObject",
    "check_manifests",
    "check_paths",
    "default_catalog",
    "export_objects",
]
