"""Core Kubernetes types: ConfigMap, Secret, Namespace, Event, Pod, Node and the storage
kinds (PersistentVolumeClaim, PersistentVolume), with the PodSpec every workload runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from wonderland.api import quantity
from wonderland.api.schemas._base import AnyMap, Quantity, Schema, StringMap

__all__ = [
    "VOLUME_SOURCES",
    "Affinity",
    "ConfigMapObject",
    "ConfigMapProjection",
    "ConfigMapVolumeSource",
    "Container",
    "ContainerPort",
    "EnvVar",
    "EnvVarSource",
    "EventObject",
    "FieldSelector",
    "KeyToPath",
    "LabelSelector",
    "LocalObjectReference",
    "NameRef",
    "NamespaceObject",
    "NodeObject",
    "ObjectMetaTemplate",
    "PersistentVolumeClaimObject",
    "PersistentVolumeClaimVolumeSource",
    "PersistentVolumeObject",
    "PodObject",
    "PodSchedulingGate",
    "PodSecurityContext",
    "PodSpec",
    "PodTemplateSpec",
    "Probe",
    "ProjectedVolumeSource",
    "ResourceRequirements",
    "SecretObject",
    "SecretVolumeSource",
    "SecurityContext",
    "ServiceAccountTokenProjection",
    "Toleration",
    "TopLevel",
    "Volume",
    "VolumeMount",
    "VolumeProjection",
    "qos_class",
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
    hostPort: int | None = None
    hostIP: str | None = None


class ResourceRequirements(Schema):
    limits: dict[str, Quantity] | None = None
    requests: dict[str, Quantity] | None = None
    claims: list[AnyMap] | None = None


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
    subPathExpr: str | None = None
    mountPropagation: str | None = None
    recursiveReadOnly: str | None = None


class SleepAction(Schema):
    seconds: int


class LifecycleHandler(Schema):
    exec: ExecAction | None = None
    httpGet: HTTPGetAction | None = None
    tcpSocket: TCPSocketAction | None = None
    sleep: SleepAction | None = None


class Lifecycle(Schema):
    postStart: LifecycleHandler | None = None
    preStop: LifecycleHandler | None = None
    stopSignal: str | None = None


class Capabilities(Schema):
    add: list[str] | None = None
    drop: list[str] | None = None


class SecurityContext(Schema):
    """A container's securityContext: runAsUser/runAsGroup are honoured when the daemon
    runs as root; the rest is accepted and has no effect on one machine."""

    runAsUser: int | None = None
    runAsGroup: int | None = None
    runAsNonRoot: bool | None = None
    readOnlyRootFilesystem: bool | None = None
    allowPrivilegeEscalation: bool | None = None
    privileged: bool | None = None
    capabilities: Capabilities | None = None
    seccompProfile: AnyMap | None = None
    seLinuxOptions: AnyMap | None = None
    appArmorProfile: AnyMap | None = None
    procMount: str | None = None
    windowsOptions: AnyMap | None = None


class ContainerResizePolicy(Schema):
    resourceName: str
    restartPolicy: str


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
    lifecycle: Lifecycle | None = None
    terminationMessagePath: str | None = None
    terminationMessagePolicy: Literal["File", "FallbackToLogsOnError"] | None = None
    securityContext: SecurityContext | None = None
    restartPolicy: Literal["Always"] | None = None
    resizePolicy: list[ContainerResizePolicy] | None = None
    stdin: bool | None = None
    stdinOnce: bool | None = None
    tty: bool | None = None


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
    medium: Literal["", "Memory"] | None = None
    sizeLimit: Quantity | None = None


class DownwardAPIVolumeFile(Schema):
    path: str
    fieldRef: FieldSelector | None = None
    resourceFieldRef: ResourceFieldSelector | None = None
    mode: int | None = None


class DownwardAPIVolumeSource(Schema):
    items: list[DownwardAPIVolumeFile] | None = None
    defaultMode: int | None = None


class ConfigMapProjection(Schema):
    name: str | None = None
    items: list[KeyToPath] | None = None
    optional: bool | None = None


class SecretProjection(Schema):
    name: str | None = None
    items: list[KeyToPath] | None = None
    optional: bool | None = None


class DownwardAPIProjection(Schema):
    items: list[DownwardAPIVolumeFile] | None = None


class ServiceAccountTokenProjection(Schema):
    path: str
    audience: str | None = None
    expirationSeconds: int | None = None


class VolumeProjection(Schema):
    configMap: ConfigMapProjection | None = None
    secret: SecretProjection | None = None
    downwardAPI: DownwardAPIProjection | None = None
    serviceAccountToken: ServiceAccountTokenProjection | None = None


class ProjectedVolumeSource(Schema):
    sources: list[VolumeProjection] | None = None
    defaultMode: int | None = None


class HostPathVolumeSource(Schema):
    path: str
    type: (
        Literal[
            "",
            "DirectoryOrCreate",
            "Directory",
            "FileOrCreate",
            "File",
            "Socket",
            "CharDevice",
            "BlockDevice",
        ]
        | None
    ) = None


class PersistentVolumeClaimVolumeSource(Schema):
    claimName: str
    readOnly: bool | None = None


VOLUME_SOURCES = (
    "configMap",
    "secret",
    "emptyDir",
    "projected",
    "downwardAPI",
    "hostPath",
    "persistentVolumeClaim",
)


class Volume(Schema):
    name: str
    configMap: ConfigMapVolumeSource | None = None
    secret: SecretVolumeSource | None = None
    emptyDir: EmptyDirVolumeSource | None = None
    projected: ProjectedVolumeSource | None = None
    downwardAPI: DownwardAPIVolumeSource | None = None
    hostPath: HostPathVolumeSource | None = None
    persistentVolumeClaim: PersistentVolumeClaimVolumeSource | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_source(cls, data: Any) -> Any:
        if isinstance(data, dict):
            other = [k for k in data if k != "name" and k not in VOLUME_SOURCES]
            if other:
                raise ValueError(
                    f"volume type {other[0]!r} is not supported on one machine; use one of "
                    + ", ".join(VOLUME_SOURCES)
                    + " (a persistentVolumeClaim of the default StorageClass gives a folder "
                    "that survives restarts)"
                )
        return data


# -- Pod ----------------------------------------------------------------------------


class PodSecurityContext(Schema):
    runAsUser: int | None = None
    runAsGroup: int | None = None
    runAsNonRoot: bool | None = None
    fsGroup: int | None = None
    fsGroupChangePolicy: str | None = None
    supplementalGroups: list[int] | None = None
    supplementalGroupsPolicy: str | None = None
    seccompProfile: AnyMap | None = None
    seLinuxOptions: AnyMap | None = None
    appArmorProfile: AnyMap | None = None
    sysctls: list[AnyMap] | None = None
    windowsOptions: AnyMap | None = None
    seLinuxChangePolicy: str | None = None


class LocalObjectReference(Schema):
    name: str | None = None


class PodSchedulingGate(Schema):
    name: str


class PodReadinessGate(Schema):
    conditionType: str


class Toleration(Schema):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: str | None = None
    tolerationSeconds: int | None = None


class NodeSelectorRequirement(Schema):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: list[str] | None = None


class NodeSelectorTerm(Schema):
    matchExpressions: list[NodeSelectorRequirement] | None = None
    matchFields: list[NodeSelectorRequirement] | None = None


class NodeSelector(Schema):
    nodeSelectorTerms: list[NodeSelectorTerm]


class PreferredSchedulingTerm(Schema):
    weight: int
    preference: NodeSelectorTerm


class NodeAffinity(Schema):
    requiredDuringSchedulingIgnoredDuringExecution: NodeSelector | None = None
    preferredDuringSchedulingIgnoredDuringExecution: list[PreferredSchedulingTerm] | None = None


class Affinity(Schema):
    nodeAffinity: NodeAffinity | None = None
    # One node: every pod (anti-)affinity term is about this node; accepted as written.
    podAffinity: AnyMap | None = None
    podAntiAffinity: AnyMap | None = None


class PodOS(Schema):
    name: Literal["linux", "windows"]


class PodSpec(Schema):
    containers: list[Container]
    initContainers: list[Container] | None = None
    volumes: list[Volume] | None = None
    restartPolicy: Literal["Always", "OnFailure", "Never"] | None = None
    terminationGracePeriodSeconds: int | None = None
    activeDeadlineSeconds: int | None = None
    nodeSelector: StringMap | None = None
    nodeName: str | None = None
    affinity: Affinity | None = None
    tolerations: list[Toleration] | None = None
    schedulerName: str | None = None
    schedulingGates: list[PodSchedulingGate] | None = None
    priorityClassName: str | None = None
    priority: int | None = None
    preemptionPolicy: str | None = None
    serviceAccountName: str | None = None
    serviceAccount: str | None = None
    automountServiceAccountToken: bool | None = None
    securityContext: PodSecurityContext | None = None
    imagePullSecrets: list[LocalObjectReference] | None = None
    hostname: str | None = None
    subdomain: str | None = None
    setHostnameAsFQDN: bool | None = None
    enableServiceLinks: bool | None = None
    dnsPolicy: str | None = None
    dnsConfig: AnyMap | None = None
    hostNetwork: bool | None = None
    hostPID: bool | None = None
    hostIPC: bool | None = None
    hostAliases: list[AnyMap] | None = None
    shareProcessNamespace: bool | None = None
    readinessGates: list[PodReadinessGate] | None = None
    topologySpreadConstraints: list[AnyMap] | None = None
    runtimeClassName: str | None = None
    overhead: dict[str, Quantity] | None = None
    os: PodOS | None = None
    resourceClaims: list[AnyMap] | None = None


class ObjectMetaTemplate(Schema):
    """The metadata of a pod or job template (labels and annotations; the rest is generated)."""

    name: str | None = None
    generateName: str | None = None
    namespace: str | None = None
    labels: StringMap | None = None
    annotations: StringMap | None = None
    creationTimestamp: str | None = None
    finalizers: list[str] | None = None


class PodTemplateSpec(Schema):
    metadata: ObjectMetaTemplate | None = None
    spec: PodSpec


class LabelSelectorRequirement(Schema):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class LabelSelector(Schema):
    matchLabels: StringMap | None = None
    matchExpressions: list[LabelSelectorRequirement] | None = None


class TopLevel(Schema):
    apiVersion: str
    kind: str
    metadata: AnyMap
    status: Any = None


class ConfigMapObject(TopLevel):
    data: StringMap | None = None
    binaryData: StringMap | None = None
    immutable: bool | None = None


class SecretObject(TopLevel):
    data: StringMap | None = None
    stringData: StringMap | None = None
    type: str | None = None
    immutable: bool | None = None


class NamespaceSpec(Schema):
    finalizers: list[str] | None = None


class NamespaceObject(TopLevel):
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


class EventObject(TopLevel):
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


class PodObject(TopLevel):
    spec: PodSpec


def qos_class(pod: PodObject) -> str:
    """Guaranteed (every container has equal cpu and memory requests and limits),
    BestEffort (none has any), else Burstable."""
    everything = [*pod.spec.containers, *(pod.spec.initContainers or [])]
    requests_any = False
    guaranteed = True
    for c in everything:
        res = c.resources
        limits = (res.limits if res else None) or {}
        requests = (res.requests if res else None) or {}
        if limits or requests:
            requests_any = True
        for name in ("cpu", "memory"):
            if name not in limits or (
                name in requests and quantity.parse(requests[name]) != quantity.parse(limits[name])
            ):
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


class Taint(Schema):
    key: str
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
    timeAdded: str | None = None


class NodeSpec(Schema):
    podCIDR: str | None = None
    podCIDRs: list[str] | None = None
    providerID: str | None = None
    unschedulable: bool | None = None
    taints: list[Taint] | None = None


class NodeObject(TopLevel):
    spec: NodeSpec | None = None


class VolumeResourceRequirements(Schema):
    limits: dict[str, Quantity] | None = None
    requests: dict[str, Quantity] | None = None


class TypedObjectReference(Schema):
    apiGroup: str | None = None
    kind: str
    name: str
    namespace: str | None = None


AccessMode = Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]


class PersistentVolumeClaimSpec(Schema):
    accessModes: list[AccessMode] | None = None
    resources: VolumeResourceRequirements | None = None
    storageClassName: str | None = None
    volumeName: str | None = None
    volumeMode: Literal["Filesystem", "Block"] | None = None
    selector: LabelSelector | None = None
    dataSource: TypedObjectReference | None = None
    dataSourceRef: TypedObjectReference | None = None
    volumeAttributesClassName: str | None = None


class PersistentVolumeClaimObject(TopLevel):
    spec: PersistentVolumeClaimSpec


class LocalVolumeSource(Schema):
    path: str
    fsType: str | None = None


class PersistentVolumeSpec(Schema):
    capacity: dict[str, Quantity] | None = None
    accessModes: list[AccessMode] | None = None
    persistentVolumeReclaimPolicy: Literal["Retain", "Delete", "Recycle"] | None = None
    storageClassName: str | None = None
    volumeMode: Literal["Filesystem", "Block"] | None = None
    hostPath: HostPathVolumeSource | None = None
    local: LocalVolumeSource | None = None
    claimRef: ObjectReference | None = None
    mountOptions: list[str] | None = None
    nodeAffinity: AnyMap | None = None
    volumeAttributesClassName: str | None = None


class PersistentVolumeObject(TopLevel):
    spec: PersistentVolumeSpec
