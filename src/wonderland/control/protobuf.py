"""Reading the Kubernetes protobuf encoding of the built-in kinds kubectl sends that way.

kubectl's typed commands (``kubectl create configmap|secret|namespace``, ``kubectl create
job [--from=cronjob/NAME]``, ``kubectl create cronjob``, ``kubectl run``) send bodies as
``application/vnd.kubernetes.protobuf``: the magic ``k8s\\0`` and a ``runtime.Unknown``
wrapping the object. This decodes ConfigMap, Secret, Namespace, Pod, batch/v1 Job and
CronJob into the JSON shape; answers still go out as JSON, which those clients also accept.

The messages are described by tables of field numbers taken from k8s.io/api
``core/v1`` and ``batch/v1`` ``generated.proto`` and apimachinery's ``meta/v1``,
``resource`` and ``intstr`` (Kubernetes 1.32). The Go structs behind them decide what the
JSON holds: a plain (non-pointer) scalar at its zero value is left out, as ``omitempty``
does, while a pointer field that is present is kept even when zero (``suspend: false``).
Fields not in the tables (cloud volume types, status) are skipped, as protobuf readers do.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wonderland.errors import InvalidError

__all__ = ["MAGIC", "decode"]

MAGIC = b"k8s\x00"


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise InvalidError("body", "truncated protobuf")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field; bytes for length-delimited ones."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise InvalidError("body", "truncated protobuf")
            yield number, wire, data[pos : pos + length]
            pos += length
        elif wire == 1:
            yield number, wire, data[pos : pos + 8]
            pos += 8
        elif wire == 5:
            yield number, wire, data[pos : pos + 4]
            pos += 4
        else:
            raise InvalidError("body", f"unsupported protobuf wire type {wire}")


def _entry(data: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, _, raw in _fields(data):
        if number == 1:
            key = raw.decode()
        elif number == 2:
            value = raw
    return key, value


# -- message tables ------------------------------------------------------------------


@dataclass(frozen=True)
class F:
    """One field: its JSON name and how to read it.

    ``kind``: str, bool, int (signed varint), msg (the message ``msg``), map (string to
    string), qmap (string to Quantity), qty (Quantity), time (meta/v1 Time), intstr
    (IntOrString). ``many``: repeated. ``ptr``: a Go pointer, kept even at its zero value.
    ``inline``: an embedded struct whose fields belong to the parent in JSON.
    """

    name: str
    kind: str = "str"
    msg: str = ""
    many: bool = False
    ptr: bool = False
    inline: bool = False


def M(name: str, msg: str, many: bool = False, inline: bool = False) -> F:
    return F(name, "msg", msg=msg, many=many, inline=inline)


def S(name: str, ptr: bool = False, many: bool = False) -> F:
    return F(name, "str", ptr=ptr, many=many)


def B(name: str, ptr: bool = False) -> F:
    return F(name, "bool", ptr=ptr)


def I(name: str, ptr: bool = False, many: bool = False) -> F:  # noqa: E743
    return F(name, "int", ptr=ptr, many=many)


_NAME_REF = {1: M("", "LocalObjectReference", inline=True)}
_KEY_TO_PATH = M("items", "KeyToPath", many=True)

# One entry per proto message, a few fields a line, in the order of generated.proto.
# fmt: off
MESSAGES: dict[str, dict[int, F]] = {
    # apimachinery meta/v1
    "ObjectMeta": {
        1: S("name"), 2: S("generateName"), 3: S("namespace"), 5: S("uid"),
        6: S("resourceVersion"), 7: I("generation"), 8: F("creationTimestamp", "time"),
        10: I("deletionGracePeriodSeconds", ptr=True), 11: F("labels", "map"),
        12: F("annotations", "map"), 13: M("ownerReferences", "OwnerReference", many=True),
        14: S("finalizers", many=True),
    },
    "OwnerReference": {
        5: S("apiVersion"), 1: S("kind"), 3: S("name"), 4: S("uid"),
        6: B("controller", ptr=True), 7: B("blockOwnerDeletion", ptr=True),
    },
    "LabelSelector": {1: F("matchLabels", "map"), 2: M("matchExpressions", "LabelSelectorRequirement", many=True)},
    "LabelSelectorRequirement": {1: S("key"), 2: S("operator"), 3: S("values", many=True)},
    # batch/v1
    "Job": {1: M("metadata", "ObjectMeta"), 2: M("spec", "JobSpec")},
    "JobSpec": {
        1: I("parallelism", ptr=True), 2: I("completions", ptr=True),
        3: I("activeDeadlineSeconds", ptr=True), 11: M("podFailurePolicy", "PodFailurePolicy"),
        16: M("successPolicy", "SuccessPolicy"), 7: I("backoffLimit", ptr=True),
        12: I("backoffLimitPerIndex", ptr=True), 13: I("maxFailedIndexes", ptr=True),
        4: M("selector", "LabelSelector"), 5: B("manualSelector", ptr=True),
        6: M("template", "PodTemplateSpec"), 8: I("ttlSecondsAfterFinished", ptr=True),
        9: S("completionMode", ptr=True), 10: B("suspend", ptr=True),
        14: S("podReplacementPolicy", ptr=True), 15: S("managedBy", ptr=True),
    },
    "PodFailurePolicy": {1: M("rules", "PodFailurePolicyRule", many=True)},
    "PodFailurePolicyRule": {
        1: S("action"), 2: M("onExitCodes", "PodFailurePolicyOnExitCodesRequirement"),
        3: M("onPodConditions", "PodFailurePolicyOnPodConditionsPattern", many=True),
    },
    "PodFailurePolicyOnExitCodesRequirement": {1: S("containerName", ptr=True), 2: S("operator"), 3: I("values", many=True)},
    "PodFailurePolicyOnPodConditionsPattern": {1: S("type"), 2: S("status")},
    "SuccessPolicy": {1: M("rules", "SuccessPolicyRule", many=True)},
    "SuccessPolicyRule": {1: S("succeededIndexes", ptr=True), 2: I("succeededCount", ptr=True)},
    "CronJob": {1: M("metadata", "ObjectMeta"), 2: M("spec", "CronJobSpec")},
    "CronJobSpec": {
        1: S("schedule"), 8: S("timeZone", ptr=True), 2: I("startingDeadlineSeconds", ptr=True),
        3: S("concurrencyPolicy"), 4: B("suspend", ptr=True), 5: M("jobTemplate", "JobTemplateSpec"),
        6: I("successfulJobsHistoryLimit", ptr=True), 7: I("failedJobsHistoryLimit", ptr=True),
    },
    "JobTemplateSpec": {1: M("metadata", "ObjectMeta"), 2: M("spec", "JobSpec")},
    # core/v1
    "Pod": {1: M("metadata", "ObjectMeta"), 2: M("spec", "PodSpec")},
    "PodTemplateSpec": {1: M("metadata", "ObjectMeta"), 2: M("spec", "PodSpec")},
    "PodSpec": {
        1: M("volumes", "Volume", many=True), 20: M("initContainers", "Container", many=True),
        2: M("containers", "Container", many=True), 3: S("restartPolicy"),
        4: I("terminationGracePeriodSeconds", ptr=True), 5: I("activeDeadlineSeconds", ptr=True),
        6: S("dnsPolicy"), 7: F("nodeSelector", "map"), 8: S("serviceAccountName"),
        9: S("serviceAccount"), 21: B("automountServiceAccountToken", ptr=True), 10: S("nodeName"),
        11: B("hostNetwork"), 12: B("hostPID"), 13: B("hostIPC"),
        27: B("shareProcessNamespace", ptr=True), 14: M("securityContext", "PodSecurityContext"),
        15: M("imagePullSecrets", "LocalObjectReference", many=True), 16: S("hostname"),
        17: S("subdomain"), 18: M("affinity", "Affinity"), 19: S("schedulerName"),
        22: M("tolerations", "Toleration", many=True), 23: M("hostAliases", "HostAlias", many=True),
        24: S("priorityClassName"), 25: I("priority", ptr=True), 26: M("dnsConfig", "PodDNSConfig"),
        28: M("readinessGates", "PodReadinessGate", many=True), 29: S("runtimeClassName", ptr=True),
        30: B("enableServiceLinks", ptr=True), 31: S("preemptionPolicy", ptr=True),
        32: F("overhead", "qmap"), 35: B("setHostnameAsFQDN", ptr=True), 36: M("os", "PodOS"),
        38: M("schedulingGates", "PodSchedulingGate", many=True),
    },
    "Container": {
        1: S("name"), 2: S("image"), 3: S("command", many=True), 4: S("args", many=True),
        5: S("workingDir"), 6: M("ports", "ContainerPort", many=True),
        19: M("envFrom", "EnvFromSource", many=True), 7: M("env", "EnvVar", many=True),
        8: M("resources", "ResourceRequirements"), 23: M("resizePolicy", "ContainerResizePolicy", many=True),
        24: S("restartPolicy", ptr=True), 9: M("volumeMounts", "VolumeMount", many=True),
        10: M("livenessProbe", "Probe"), 11: M("readinessProbe", "Probe"), 22: M("startupProbe", "Probe"),
        12: M("lifecycle", "Lifecycle"), 13: S("terminationMessagePath"),
        20: S("terminationMessagePolicy"), 14: S("imagePullPolicy"),
        15: M("securityContext", "SecurityContext"), 16: B("stdin"), 17: B("stdinOnce"), 18: B("tty"),
    },
    "ContainerPort": {1: S("name"), 2: I("hostPort"), 3: I("containerPort"), 4: S("protocol"), 5: S("hostIP")},
    "ContainerResizePolicy": {1: S("resourceName"), 2: S("restartPolicy")},
    "EnvVar": {1: S("name"), 2: S("value"), 3: M("valueFrom", "EnvVarSource")},
    "EnvVarSource": {
        1: M("fieldRef", "ObjectFieldSelector"), 2: M("resourceFieldRef", "ResourceFieldSelector"),
        3: M("configMapKeyRef", "KeySelector"), 4: M("secretKeyRef", "KeySelector"),
    },
    "ObjectFieldSelector": {1: S("apiVersion"), 2: S("fieldPath")},
    "ResourceFieldSelector": {1: S("containerName"), 2: S("resource"), 3: F("divisor", "qty")},
    "KeySelector": {**_NAME_REF, 2: S("key"), 3: B("optional", ptr=True)},
    "EnvFromSource": {1: S("prefix"), 2: M("configMapRef", "NameRef"), 3: M("secretRef", "NameRef")},
    "NameRef": {**_NAME_REF, 2: B("optional", ptr=True)},
    "LocalObjectReference": {1: S("name")},
    "ResourceRequirements": {1: F("limits", "qmap"), 2: F("requests", "qmap")},
    "VolumeMount": {
        1: S("name"), 2: B("readOnly"), 7: S("recursiveReadOnly", ptr=True), 3: S("mountPath"),
        4: S("subPath"), 5: S("mountPropagation", ptr=True), 6: S("subPathExpr"),
    },
    "Volume": {1: S("name"), 2: M("", "VolumeSource", inline=True)},
    "VolumeSource": {
        1: M("hostPath", "HostPathVolumeSource"), 2: M("emptyDir", "EmptyDirVolumeSource"),
        6: M("secret", "SecretVolumeSource"), 10: M("persistentVolumeClaim", "PVCVolumeSource"),
        16: M("downwardAPI", "DownwardAPIVolumeSource"), 19: M("configMap", "ConfigMapVolumeSource"),
        26: M("projected", "ProjectedVolumeSource"),
    },
    "HostPathVolumeSource": {1: S("path"), 2: S("type", ptr=True)},
    "EmptyDirVolumeSource": {1: S("medium"), 2: F("sizeLimit", "qty", ptr=True)},
    "SecretVolumeSource": {1: S("secretName"), 2: _KEY_TO_PATH, 3: I("defaultMode", ptr=True), 4: B("optional", ptr=True)},
    "ConfigMapVolumeSource": {**_NAME_REF, 2: _KEY_TO_PATH, 3: I("defaultMode", ptr=True), 4: B("optional", ptr=True)},
    "PVCVolumeSource": {1: S("claimName"), 2: B("readOnly")},
    "KeyToPath": {1: S("key"), 2: S("path"), 3: I("mode", ptr=True)},
    "DownwardAPIVolumeSource": {1: M("items", "DownwardAPIVolumeFile", many=True), 2: I("defaultMode", ptr=True)},
    "DownwardAPIVolumeFile": {
        1: S("path"), 2: M("fieldRef", "ObjectFieldSelector"),
        3: M("resourceFieldRef", "ResourceFieldSelector"), 4: I("mode", ptr=True),
    },
    "ProjectedVolumeSource": {1: M("sources", "VolumeProjection", many=True), 2: I("defaultMode", ptr=True)},
    "VolumeProjection": {
        1: M("secret", "Projection"), 2: M("downwardAPI", "DownwardAPIProjection"),
        3: M("configMap", "Projection"), 4: M("serviceAccountToken", "ServiceAccountTokenProjection"),
    },
    "Projection": {**_NAME_REF, 2: _KEY_TO_PATH, 4: B("optional", ptr=True)},
    "DownwardAPIProjection": {1: M("items", "DownwardAPIVolumeFile", many=True)},
    "ServiceAccountTokenProjection": {1: S("audience"), 2: I("expirationSeconds", ptr=True), 3: S("path")},
    "Probe": {
        1: M("", "ProbeHandler", inline=True), 2: I("initialDelaySeconds"), 3: I("timeoutSeconds"),
        4: I("periodSeconds"), 5: I("successThreshold"), 6: I("failureThreshold"),
        7: I("terminationGracePeriodSeconds", ptr=True),
    },
    "ProbeHandler": {
        1: M("exec", "ExecAction"), 2: M("httpGet", "HTTPGetAction"),
        3: M("tcpSocket", "TCPSocketAction"), 4: M("grpc", "GRPCAction"),
    },
    "Lifecycle": {1: M("postStart", "LifecycleHandler"), 2: M("preStop", "LifecycleHandler")},
    "LifecycleHandler": {
        1: M("exec", "ExecAction"), 2: M("httpGet", "HTTPGetAction"),
        3: M("tcpSocket", "TCPSocketAction"), 4: M("sleep", "SleepAction"),
    },
    "ExecAction": {1: S("command", many=True)},
    "HTTPGetAction": {
        1: S("path"), 2: F("port", "intstr"), 3: S("host"), 4: S("scheme"),
        5: M("httpHeaders", "HTTPHeader", many=True),
    },
    "HTTPHeader": {1: S("name"), 2: S("value")},
    "TCPSocketAction": {1: F("port", "intstr"), 2: S("host")},
    "GRPCAction": {1: I("port"), 2: S("service", ptr=True)},
    "SleepAction": {1: I("seconds")},
    "SecurityContext": {
        1: M("capabilities", "Capabilities"), 2: B("privileged", ptr=True),
        4: I("runAsUser", ptr=True), 8: I("runAsGroup", ptr=True), 5: B("runAsNonRoot", ptr=True),
        6: B("readOnlyRootFilesystem", ptr=True), 7: B("allowPrivilegeEscalation", ptr=True),
        9: S("procMount", ptr=True), 11: M("seccompProfile", "Profile"),
        12: M("appArmorProfile", "Profile"),
    },
    "Capabilities": {1: S("add", many=True), 2: S("drop", many=True)},
    "Profile": {1: S("type"), 2: S("localhostProfile", ptr=True)},
    "PodSecurityContext": {
        2: I("runAsUser", ptr=True), 6: I("runAsGroup", ptr=True), 3: B("runAsNonRoot", ptr=True),
        4: I("supplementalGroups", many=True), 12: S("supplementalGroupsPolicy", ptr=True),
        5: I("fsGroup", ptr=True), 9: S("fsGroupChangePolicy", ptr=True),
        10: M("seccompProfile", "Profile"), 11: M("appArmorProfile", "Profile"),
        13: S("seLinuxChangePolicy", ptr=True),
    },
    "Toleration": {1: S("key"), 2: S("operator"), 3: S("value"), 4: S("effect"), 5: I("tolerationSeconds", ptr=True)},
    "HostAlias": {1: S("ip"), 2: S("hostnames", many=True)},
    "PodDNSConfig": {1: S("nameservers", many=True), 2: S("searches", many=True), 3: M("options", "PodDNSConfigOption", many=True)},
    "PodDNSConfigOption": {1: S("name"), 2: S("value", ptr=True)},
    "PodReadinessGate": {1: S("conditionType")},
    "PodSchedulingGate": {1: S("name")},
    "PodOS": {1: S("name")},
    "Affinity": {1: M("nodeAffinity", "NodeAffinity")},
    "NodeAffinity": {
        1: M("requiredDuringSchedulingIgnoredDuringExecution", "NodeSelector"),
        2: M("preferredDuringSchedulingIgnoredDuringExecution", "PreferredSchedulingTerm", many=True),
    },
    "NodeSelector": {1: M("nodeSelectorTerms", "NodeSelectorTerm", many=True)},
    "NodeSelectorTerm": {
        1: M("matchExpressions", "NodeSelectorRequirement", many=True),
        2: M("matchFields", "NodeSelectorRequirement", many=True),
    },
    "NodeSelectorRequirement": {1: S("key"), 2: S("operator"), 3: S("values", many=True)},
    "PreferredSchedulingTerm": {1: I("weight"), 2: M("preference", "NodeSelectorTerm")},
}
# fmt: on


def _signed(value: int) -> int:
    """int32/int64 varints are two's complement over 64 bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _quantity(data: bytes) -> str:
    return next((raw.decode() for n, _, raw in _fields(data) if n == 1), "0")


def _time(data: bytes) -> str | None:
    seconds = next((_signed(v) for n, w, v in _fields(data) if n == 1 and w == 0), 0)
    if seconds == 0:
        return None  # the zero time: JSON null, left out
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _intstr(data: bytes) -> int | str:
    kind, number, text = 0, 0, ""
    for n, _, value in _fields(data):
        if n == 1:
            kind = value
        elif n == 2:
            number = _signed(value)
        elif n == 3:
            text = value.decode()
    return text if kind == 1 else number


def _scalars(field: F, wire: int, raw: Any) -> list[Any]:
    """The values of a scalar field (a packed repeated field holds several)."""
    if field.kind == "str":
        return [raw.decode()]
    if wire == 2:  # packed varints
        values, pos = [], 0
        while pos < len(raw):
            value, pos = _varint(raw, pos)
            values.append(value)
    else:
        values = [raw]
    if field.kind == "bool":
        return [bool(v) for v in values]
    return [_signed(v) for v in values]


def _zero(value: Any) -> bool:
    return value in ("", 0, False, "0") and not isinstance(value, dict)


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    """The JSON-shaped dict of message ``name`` read from ``data``."""
    table = MESSAGES[name]
    out: dict[str, Any] = {}
    for number, wire, raw in _fields(data):
        field = table.get(number)
        if field is None:
            continue
        if field.kind == "msg":
            value: Any = decode_message(field.msg, raw)
            if field.inline:
                out.update(value)
                continue
        elif field.kind in ("map", "qmap"):
            key, item = _entry(raw)
            out.setdefault(field.name, {})[key] = (
                _quantity(item) if field.kind == "qmap" else item.decode()
            )
            continue
        elif field.kind == "qty":
            value = _quantity(raw)
        elif field.kind == "time":
            value = _time(raw)
            if value is None:
                continue
        elif field.kind == "intstr":
            value = _intstr(raw)
        else:
            values = _scalars(field, wire, raw)
            if field.many:
                out.setdefault(field.name, []).extend(values)
                continue
            value = values[-1]
        if field.many:
            out.setdefault(field.name, []).append(value)
        elif field.ptr or field.kind in ("msg", "intstr") or not _zero(value):
            out[field.name] = value
    return out


# -- ConfigMap, Secret, Namespace (their data maps are bytes, not strings) ----------


def _metadata(data: bytes) -> dict[str, Any]:
    return decode_message("ObjectMeta", data)


def _configmap(data: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, _, raw in _fields(data):
        if number == 1:
            obj["metadata"] = _metadata(raw)
        elif number == 2:
            key, value = _entry(raw)
            obj.setdefault("data", {})[key] = value.decode()
        elif number == 3:
            key, value = _entry(raw)
            obj.setdefault("binaryData", {})[key] = base64.b64encode(value).decode()
        elif number == 4:
            obj["immutable"] = bool(raw)
    return obj


def _secret(data: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, _, raw in _fields(data):
        if number == 1:
            obj["metadata"] = _metadata(raw)
        elif number == 2:
            key, value = _entry(raw)
            obj.setdefault("data", {})[key] = base64.b64encode(value).decode()
        elif number == 3 and raw:
            obj["type"] = raw.decode()
        elif number == 4:
            key, value = _entry(raw)
            obj.setdefault("stringData", {})[key] = value.decode()
        elif number == 5:
            obj["immutable"] = bool(raw)
    return obj


def _namespace(data: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, _, raw in _fields(data):
        if number == 1:
            obj["metadata"] = _metadata(raw)
        elif number == 2:
            finalizers = [v.decode() for n, _, v in _fields(raw) if n == 1]
            if finalizers:
                obj["spec"] = {"finalizers": finalizers}
    return obj


def _pod(data: bytes) -> dict[str, Any]:
    return decode_message("Pod", data)


def _job(data: bytes) -> dict[str, Any]:
    return decode_message("Job", data)


def _cronjob(data: bytes) -> dict[str, Any]:
    return decode_message("CronJob", data)


_DECODERS = {
    ("v1", "ConfigMap"): _configmap,
    ("v1", "Secret"): _secret,
    ("v1", "Namespace"): _namespace,
    ("v1", "Pod"): _pod,
    ("batch/v1", "Job"): _job,
    ("batch/v1", "CronJob"): _cronjob,
}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON-shaped object of a Kubernetes protobuf body; InvalidError if unsupported."""
    if not body.startswith(MAGIC):
        raise InvalidError("body", "not a Kubernetes protobuf message (no k8s magic)")
    api_version = kind = ""
    raw = b""
    for number, _, value in _fields(body[len(MAGIC) :]):
        if number == 1:
            for inner, _, text in _fields(value):
                if inner == 1:
                    api_version = text.decode()
                elif inner == 2:
                    kind = text.decode()
        elif number == 2:
            raw = value
    decoder = _DECODERS.get((api_version, kind))
    if decoder is None:
        raise InvalidError(
            "body",
            "protobuf bodies are read for v1 ConfigMap, Secret, Namespace and Pod and batch/v1 "
            f"Job and CronJob only, not {api_version} {kind}; send JSON (kubectl apply does)",
        )
    obj = decoder(raw)
    return {"apiVersion": api_version, "kind": kind, **obj}
