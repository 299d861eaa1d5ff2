"""Export to a cluster: manifests checked offline against the upstream CRDs' schemas.

``wonderland export --check`` reads manifests and checks each object against the vendored
schemas of the pinned Knative Serving, KServe, Dapr, Kubeflow Trainer, Katib, JobSet and
Kubernetes releases (``schemas/manifest.json`` names them).
"""

from __future__ import annotations

from wonderland.export.catalog import KindSchema, SchemaCatalog, SchemaSource, default_catalog
from wonderland.export.check import CheckReport, Finding, check_manifests, check_paths

__all__ = [
    "CheckReport",
    "Finding",
    "KindSchema",
    "SchemaCatalog",
    "SchemaSource",
    "check_manifests",
    "check_paths",
    "default_catalog",
]
