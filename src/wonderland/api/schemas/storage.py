"""storage.k8s.io/v1: StorageClass."""

from __future__ import annotations

from typing import Any, Literal

from wonderland.api.schemas._base import AnyMap, Schema, StringMap

__all__ = ["StorageClassObject"]


class StorageClassObject(Schema):
    apiVersion: str
    kind: str
    metadata: AnyMap
    provisioner: str
    parameters: StringMap | None = None
    reclaimPolicy: Literal["Delete", "Retain"] | None = None
    volumeBindingMode: Literal["Immediate", "WaitForFirstConsumer"] | None = None
    allowVolumeExpansion: bool | None = None
    mountOptions: list[str] | None = None
    allowedTopologies: list[AnyMap] | None = None
    status: Any = None
