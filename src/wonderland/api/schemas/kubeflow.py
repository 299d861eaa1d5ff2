"""Kubeflow's platform kinds: ``PodDefault`` (``kubeflow.org/v1alpha1``, the admission
webhook's) and ``Notebook`` (``kubeflow.org/v1``, the notebook controller's)."""

from __future__ import annotations

from wonderland.api.schemas._base import Schema, StringMap
from wonderland.api.schemas.core import (
    Container,
    EnvFromSource,
    EnvVar,
    LabelSelector,
    LocalObjectReference,
    PodSpec,
    Toleration,
    TopLevel,
    Volume,
    VolumeMount,
)

__all__ = [
    "NotebookObject",
    "NotebookSpec",
    "PodDefaultObject",
    "PodDefaultSpec",
]


class PodDefaultSpec(Schema):
    """What the webhook merges into every matching pod of the PodDefault's namespace."""

    selector: LabelSelector
    desc: str | None = None
    initContainers: list[Container] | None = None
    sidecars: list[Container] | None = None
    serviceAccountName: str | None = None
    automountServiceAccountToken: bool | None = None
    env: list[EnvVar] | None = None
    envFrom: list[EnvFromSource] | None = None
    volumes: list[Volume] | None = None
    volumeMounts: list[VolumeMount] | None = None
    annotations: StringMap | None = None
    labels: StringMap | None = None
    tolerations: list[Toleration] | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    imagePullSecrets: list[LocalObjectReference] | None = None


class PodDefaultObject(TopLevel):
    spec: PodDefaultSpec


class NotebookTemplateSpec(Schema):
    """The CRD's template: a pod spec only (the controller sets the pod's metadata)."""

    spec: PodSpec


class NotebookSpec(Schema):
    template: NotebookTemplateSpec


class NotebookObject(TopLevel):
    spec: NotebookSpec
