"""Core Kubernetes types: ConfigMap, Secret, and the PodSpec subset revisions run."""

from __future__ import annotations

from typing import Any, Literal

from wonderland.api.schemas._base import AnyMap, Quantity, Schema, StringMap

__all__ = [
    "ConfigMapObject",
    "Container",
    "EnvVar",
    "EventObject",
    "NamespaceObject",
    "Probe",
    "ResourceRequirements",
    "SecretObject",
    "Volume",
]


class KeySelector(Schema):
    name: str | None = None
    key: str
    optional: bool | None = None


class FieldSelector(Schema):
    fieldPath: str
    apiVersion: str | None = None


class ResourceFieldSelector(Schema):
    resource: str
    containerName: str | None = None
    divisor: Quantity | None = None


class EnvVarSource(Schema):
    configMapKeyRef: KeySelector | None = None
    secretKeyRef: KeySelector | None = None
    fieldRef: FieldSelector | None = None
    resourceFieldRef: ResourceFieldSelector | None = None


class EnvVar(Schema):
    name: str
    value: str | None = None
    valueFrom: EnvVarSource | None = None


class NameRef(Schema):
    name: str | None = None
    optional: bool | None = None


class EnvFromSource(Schema):
    prefix: str | None = None
    configMapRef: NameRef | None = None
    secretRef: NameRef | None = None


class ContainerPort(Schema):
    name: str | None = None
    containerPort: int
    protocol: Literal["TCP", "UDP", "SCTP"] | None = None


class ResourceRequirements(Schema):
    limits: dict[str, Quantity] | None = None
    requests: dict[str, Quantity] | None = None


class HTTPHeader(Schema):
    name: str
    value: str


class HTTPGetAction(Schema):
    path: str | None = None
    port: int | str | None = None
    host: str | None = None
    scheme: Literal["HTTP", "HTTPS"] | None = None
    httpHeaders: list[HTTPHeader] | None = None


class TCPSocketAction(Schema):
    port: int | str | None = None
    host: str | None = None


class ExecAction(Schema):
    command: list[str] | None = None


class GRPCAction(Schema):
    port: int
    service: str | None = None


class Probe(Schema):
    httpGet: HTTPGetAction | None = None
    tcpSocket: TCPSocketAction | None = None
    exec: ExecAction | None = None
    grpc: GRPCAction | None = None
    initialDelaySeconds: int | None = None
    timeoutSeconds: int | None = None
    periodSeconds: int | None = None
    successThreshold: int | None = None
    failureThreshold: int | None = None
    terminationGracePeriodSeconds: int | None = None


class VolumeMount(Schema):
    name: str
    mountPath: str
    readOnly: bool | None = None
    subPath: str | None = None


class Container(Schema):
    name: str | None = None
    image: str | None = None
    imagePullPolicy: Literal["Always", "IfNotPresent", "Never"] | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    workingDir: str | None = None
    env: list[EnvVar] | None = None
    envFrom: list[EnvFromSource] | None = None
    ports: list[ContainerPort] | None = None
    resources: ResourceRequirements | None = None
    readinessProbe: Probe | None = None
    livenessProbe: Probe | None = None
    startupProbe: Probe | None = None
    volumeMounts: list[VolumeMount] | None = None


class KeyToPath(Schema):
    key: str
    path: str
    mode: int | None = None


class ConfigMapVolumeSource(Schema):
    name: str | None = None
    items: list[KeyToPath] | None = None
    defaultMode: int | None = None
    optional: bool | None = None


class SecretVolumeSource(Schema):
    secretName: str | None = None
    items: list[KeyToPath] | None = None
    defaultMode: int | None = None
    optional: bool | None = None


class EmptyDirVolumeSource(Schema):
    medium: str | None = None
    sizeLimit: Quantity | None = None


class Volume(Schema):
    name: str
    configMap: ConfigMapVolumeSource | None = None
    secret: SecretVolumeSource | None = None
    emptyDir: EmptyDirVolumeSource | None = None


class _TopLevel(Schema):
    apiVersion: str
    kind: str
    metadata: AnyMap
    status: Any = None


class ConfigMapObject(_TopLevel):
    data: StringMap | None = None
    binaryData: StringMap | None = None
    immutable: bool | None = None


class SecretObject(_TopLevel):
    data: StringMap | None = None
    stringData: StringMap | None = None
    type: str | None = None
    immutable: bool | None = None


class NamespaceSpec(Schema):
    finalizers: list[str] | None = None


class NamespaceObject(_TopLevel):
    spec: NamespaceSpec | None = None


class ObjectReference(Schema):
    apiVersion: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resourceVersion: str | None = None
    fieldPath: str | None = None


class EventSource(Schema):
    component: str | None = None
    host: str | None = None


class EventObject(_TopLevel):
    involvedObject: ObjectReference
    reason: str | None = None
    message: str | None = None
    type: str | None = None
    count: int | None = None
    firstTimestamp: str | None = None
    lastTimestamp: str | None = None
    eventTime: str | None = None
    source: EventSource | None = None
    reportingComponent: str | None = None
    reportingInstance: str | None = None
    action: str | None = None
