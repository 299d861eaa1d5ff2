"""KServe: InferenceService (v1beta1), ServingRuntime and ClusterServingRuntime (v1alpha1)."""

from __future__ import annotations

from typing import Any, Literal

from wonderland.api.schemas._base import AnyMap, Quantity, Schema, StringMap
from wonderland.api.schemas.core import (
    Container,
    ContainerPort,
    EnvFromSource,
    EnvVar,
    Probe,
    ResourceRequirements,
    Volume,
)

__all__ = ["InferenceServiceObject", "ServingRuntimeObject"]

Protocol = Literal["v1", "v2", "grpc-v1", "grpc-v2"]


class ModelFormat(Schema):
    name: str
    version: str | None = None


class ModelSpec(Schema):
    modelFormat: ModelFormat
    runtime: str | None = None
    storageUri: str | None = None
    runtimeVersion: str | None = None
    protocolVersion: Protocol | None = None
    args: list[str] | None = None
    command: list[str] | None = None
    env: list[EnvVar] | None = None
    resources: ResourceRequirements | None = None
    name: str | None = None
    image: str | None = None
    # More inlined corev1.Container fields (KServe's gRPC examples name an h2c port).
    imagePullPolicy: Literal["Always", "IfNotPresent", "Never"] | None = None
    workingDir: str | None = None
    envFrom: list[EnvFromSource] | None = None
    ports: list[ContainerPort] | None = None
    readinessProbe: Probe | None = None
    livenessProbe: Probe | None = None


class Batcher(Schema):
    maxBatchSize: int | None = None
    maxLatency: int | None = None
    timeout: int | None = None


class Logger(Schema):
    url: str | None = None
    mode: Literal["all", "request", "response"] | None = None
    metadataHeaders: list[str] | None = None
    metadataAnnotations: list[str] | None = None


class _Component(Schema):
    containers: list[Container] | None = None
    volumes: list[Volume] | None = None
    minReplicas: int | None = None
    maxReplicas: int | None = None
    scaleTarget: int | None = None
    scaleMetric: Literal["cpu", "memory", "concurrency", "rps"] | None = None
    containerConcurrency: int | None = None
    timeout: int | None = None
    canaryTrafficPercent: int | None = None
    batcher: Batcher | None = None
    logger: Logger | None = None
    labels: StringMap | None = None
    annotations: StringMap | None = None
    serviceAccountName: str | None = None


class PredictorSpec(_Component):
    model: ModelSpec | None = None


class InferenceServiceSpec(Schema):
    predictor: PredictorSpec
    transformer: _Component | None = None
    explainer: _Component | None = None


class SupportedModelFormat(Schema):
    name: str
    version: str | None = None
    autoSelect: bool | None = None
    priority: int | None = None


class ServingRuntimeSpec(Schema):
    supportedModelFormats: list[SupportedModelFormat] | None = None
    multiModel: bool | None = None
    disabled: bool | None = None
    protocolVersions: list[Protocol] | None = None
    containers: list[Container]
    volumes: list[Volume] | None = None
    labels: StringMap | None = None
    annotations: StringMap | None = None
    resources: dict[str, Quantity] | None = None


class _TopLevel(Schema):
    apiVersion: str
    kind: str
    metadata: AnyMap
    status: Any = None


class InferenceServiceObject(_TopLevel):
    spec: InferenceServiceSpec


class ServingRuntimeObject(_TopLevel):
    spec: ServingRuntimeSpec
