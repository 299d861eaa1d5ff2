"""What the API server does to workload objects before it stores them: defaults, then the
validation messages kubectl users know (``spec.template.spec.restartPolicy: Unsupported
value: "Always": supported values: "OnFailure", "Never"``).

Pods: the defaults of ``pkg/apis/core/v1/defaults.go`` (restartPolicy, grace period,
requests from limits, ...), container names and mounts, and the fields an update may change.
Jobs: the defaults and the generated selector and labels of the Job strategy, and the
checks of ``pkg/apis/batch/validation``. CronJobs: the schedule and time zone. Claims: the
default StorageClass.
"""

from __future__ import annotations

import copy
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from wonderland.api.admission import Admission
from wonderland.api.quantity import millis
from wonderland.api.schemas.core import PodObject, PodSpec, VolumeProjection, qos_class
from wonderland.api.selectors import from_label_selector, matches
from wonderland.errors import InvalidError
from wonderland.runtime.scheduler import validate_resources
from wonderland.tokens import MIN_EXPIRATION_SECONDS
from wonderland.workloads import cron

__all__ = ["DEFAULT_STORAGE_CLASS", "install"]

Obj = dict[str, Any]

DEFAULT_STORAGE_CLASS = "standard"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
JOB_NAME = "batch.kubernetes.io/job-name"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
LEGACY_JOB_NAME = "job-name"
LEGACY_CONTROLLER_UID = "controller-uid"


# -- pods ----------------------------------------------------------------------------


def _quantities_as_strings(resources: Obj) -> None:
    """Numbers in ``limits``/``requests`` written back as quantity strings, as the API
    server serialises a ``Quantity`` (``1`` -> ``"1"``, ``0.5`` -> ``"500m"``): clients that
    type them as strings (the ``kubernetes`` client 36 and later) refuse a number."""
    for field in ("limits", "requests"):
        values = resources.get(field)
        if not isinstance(values, dict):
            continue
        for name, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                thousandths = millis(value, f"resources.{field}.{name}")
                values[name] = (
                    str(thousandths // 1000) if thousandths % 1000 == 0 else f"{thousandths}m"
                )


def default_pod_spec(spec: Obj) -> None:
    """The API server's defaults for a pod spec (and a template's)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    if "serviceAccountName" in spec or "serviceAccount" in spec:
        name = spec.get("serviceAccountName") or spec.get("serviceAccount")
        spec["serviceAccountName"] = spec["serviceAccount"] = name
    for group in ("containers", "initContainers"):
        for container in spec.get(group) or []:
            if not isinstance(container, dict):
                continue
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            image = str(container.get("image") or "")
            if image and "imagePullPolicy" not in container:
                tag = image.rsplit("/", 1)[-1]
                latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
                container["imagePullPolicy"] = "Always" if latest else "IfNotPresent"
            resources = container.get("resources")
            if isinstance(resources, dict):
                _quantities_as_strings(resources)
            if isinstance(resources, dict) and isinstance(resources.get("limits"), dict):
                requests = resources.setdefault("requests", {})
                if isinstance(requests, dict):
                    for name, value in resources["limits"].items():
                        requests.setdefault(name, value)
            for port in container.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        for key in ("configMap", "secret", "downwardAPI", "projected"):
            if isinstance(volume.get(key), dict):
                volume[key].setdefault("defaultMode", 0o644)
        if isinstance(volume.get("hostPath"), dict):
            volume["hostPath"].setdefault("type", "")


def _default_pod(obj: Obj) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        default_pod_spec(spec)
        spec.setdefault("priority", 0)
        # A new pod is Pending with its QoS class, whatever status the client sent (the
        # API server's PrepareForCreate); on update the store keeps the stored status.
        # (On update the defaults run before admission: a body it will refuse gets no class.)
        try:
            qos = qos_class(PodObject.model_validate(obj))
        except ValidationError:
            obj["status"] = {"phase": "Pending"}
        else:
            obj["status"] = {"phase": "Pending", "qosClass": qos}


def validate_pod_spec(spec: PodSpec, path: str) -> None:
    """The API server's checks of a pod spec (names, mounts, init containers, resources)."""
    if not spec.containers:
        raise InvalidError(f"{path}.containers", "Required value")
    names: set[str] = set()
    volumes = {v.name for v in spec.volumes or []}
    seen_volumes: set[str] = set()
    for i, volume in enumerate(spec.volumes or []):
        at = f"{path}.volumes[{i}]"
        if not _DNS_LABEL.match(volume.name):
            raise InvalidError(
                f"{at}.name", f'Invalid value: "{volume.name}": a lowercase RFC 1123 label'
            )
        if volume.name in seen_volumes:
            raise InvalidError(f"{at}.name", f'Duplicate value: "{volume.name}"')
        seen_volumes.add(volume.name)
        sources = [
            k
            for k, v in volume.model_dump(exclude_none=True).items()
            if k != "name" and v is not None
        ]
        if not sources:
            raise InvalidError(at, "must specify a volume type")
        if len(sources) > 1:
            raise InvalidError(at, "may not specify more than 1 volume type")
        if volume.projected is not None:
            _check_projected(volume.projected.sources or [], f"{at}.projected")
    groups = (("initContainers", spec.initContainers or []), ("containers", spec.containers))
    for group, containers in groups:
        for i, c in enumerate(containers):
            at = f"{path}.{group}[{i}]"
            if not c.name:
                raise InvalidError(f"{at}.name", "Required value")
            if not _DNS_LABEL.match(c.name) or len(c.name) > 63:
                raise InvalidError(
                    f"{at}.name",
                    f'Invalid value: "{c.name}": a lowercase RFC 1123 label must consist of '
                    "lower case alphanumeric characters or '-'",
                )
            if c.name in names:
                raise InvalidError(f"{at}.name", f'Duplicate value: "{c.name}"')
            names.add(c.name)
            if not c.image and not c.command:
                raise InvalidError(
                    f"{at}.image",
                    "Required value (or give a command: it runs on this machine as written)",
                )
            if c.restartPolicy is not None and group == "containers":
                raise InvalidError(
                    f"{at}.restartPolicy", "Forbidden: may not be set for non-init containers"
                )
            if group == "initContainers" and c.restartPolicy != "Always":
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    if getattr(c, probe) is not None:
                        raise InvalidError(
                            f"{at}.{probe}",
                            "Forbidden: may not be set for init containers without restartPolicy=Always",
                        )
                if c.lifecycle is not None:
                    raise InvalidError(
                        f"{at}.lifecycle",
                        "Forbidden: may not be set for init containers without restartPolicy=Always",
                    )
            for j, env in enumerate(c.env or []):
                if not _ENV_NAME.match(env.name):
                    raise InvalidError(
                        f"{at}.env[{j}].name",
                        f'Invalid value: "{env.name}": a valid environment variable name must '
                        "consist of alphabetic characters, digits, '_', '-', or '.', and must "
                        "not start with a digit",
                    )
            for j, port in enumerate(c.ports or []):
                if not 0 < port.containerPort < 65536:
                    raise InvalidError(
                        f"{at}.ports[{j}].containerPort",
                        f"Invalid value: {port.containerPort}: must be between 1 and 65535, inclusive",
                    )
            mount_paths: set[str] = set()
            for j, mount in enumerate(c.volumeMounts or []):
                where = f"{at}.volumeMounts[{j}]"
                if mount.name not in volumes:
                    raise InvalidError(f"{where}.name", f'Not found: "{mount.name}"')
                if not mount.mountPath:
                    raise InvalidError(f"{where}.mountPath", "Required value")
                if mount.mountPath in mount_paths:
                    raise InvalidError(
                        f"{where}.mountPath", f'Invalid value: "{mount.mountPath}": must be unique'
                    )
                mount_paths.add(mount.mountPath)
                for sub_field in ("subPath", "subPathExpr"):
                    sub = getattr(mount, sub_field)
                    if not sub:
                        continue
                    if sub.startswith("/"):
                        raise InvalidError(
                            f"{where}.{sub_field}",
                            f'Invalid value: "{sub}": must be a relative path',
                        )
                    if ".." in sub.split("/"):
                        raise InvalidError(
                            f"{where}.{sub_field}",
                            f"Invalid value: \"{sub}\": must not contain '..'",
                        )
                if mount.subPath and mount.subPathExpr:
                    raise InvalidError(
                        f"{where}.subPathExpr",
                        "Invalid value: subPathExpr and subPath are mutually exclusive",
                    )
    validate_resources(spec, path)
    if spec.activeDeadlineSeconds is not None and spec.activeDeadlineSeconds <= 0:
        raise InvalidError(f"{path}.activeDeadlineSeconds", "Invalid value: must be greater than 0")
    if spec.terminationGracePeriodSeconds is not None and spec.terminationGracePeriodSeconds < 0:
        raise InvalidError(f"{path}.terminationGracePeriodSeconds", "Invalid value: must be >= 0")


def _check_projected(sources: list[VolumeProjection], at: str) -> None:
    for i, source in enumerate(sources):
        sat = source.serviceAccountToken
        if sat is None:
            continue
        where = f"{at}.sources[{i}].serviceAccountToken"
        seconds = sat.expirationSeconds
        if seconds is not None and seconds < MIN_EXPIRATION_SECONDS:
            raise InvalidError(
                f"{where}.expirationSeconds",
                f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
            )
        if seconds is not None and seconds > 2**32:
            raise InvalidError(
                f"{where}.expirationSeconds",
                f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds",
            )
        if not sat.path:
            raise InvalidError(f"{where}.path", "Required value")
        if sat.path.startswith("/") or ".." in sat.path.split("/"):
            raise InvalidError(
                f"{where}.path",
                f"Invalid value: \"{sat.path}\": must be a relative path without '..'",
            )


_MUTABLE_POD = (
    "activeDeadlineSeconds",
    "tolerations",
    "schedulingGates",
    "terminationGracePeriodSeconds",
    "nodeName",
)


def _check_pod(new: Obj, old: Obj | None) -> None:
    spec = PodSpec.model_validate(new.get("spec"))
    validate_pod_spec(spec, "spec")
    if old is None:
        return
    before = copy.deepcopy(old.get("spec") or {})
    after = copy.deepcopy(new.get("spec") or {})
    if before.get("nodeName") and after.get("nodeName") != before.get("nodeName"):
        raise InvalidError(
            "spec.nodeName", "Forbidden: pod updates may not change nodeName once set"
        )
    old_gates = {g.get("name") for g in before.get("schedulingGates") or []}
    new_gates = {g.get("name") for g in after.get("schedulingGates") or []}
    if not new_gates <= old_gates:
        raise InvalidError(
            "spec.schedulingGates",
            "Forbidden: only deletion is allowed, but found new scheduling gate",
        )
    for group in ("containers", "initContainers"):
        for b, a in zip(before.get(group) or [], after.get(group) or [], strict=False):
            b.pop("image", None)
            a.pop("image", None)
    for key in _MUTABLE_POD:
        before.pop(key, None)
        after.pop(key, None)
    if before != after:
        raise InvalidError(
            "spec",
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
            "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
            "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
            "(allow it to be set to 1 if it was previously negative); delete the pod and create "
            "it again instead",
        )


# -- jobs ----------------------------------------------------------------------------


def default_job_spec(spec: Obj) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6 if spec.get("backoffLimitPerIndex") is None else 2147483647)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault(
        "podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    )
    spec.setdefault("manualSelector", None)
    if spec.get("manualSelector") is None:
        spec.pop("manualSelector")
    policy = spec.get("podFailurePolicy")
    for rule in (policy.get("rules") or []) if isinstance(policy, dict) else []:
        for pattern in (rule.get("onPodConditions") or []) if isinstance(rule, dict) else []:
            if isinstance(pattern, dict) and not pattern.get("status"):
                pattern["status"] = "True"
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        default_pod_spec(template["spec"])


def _default_job(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    default_job_spec(spec)
    uid = (obj.get("metadata") or {}).get("uid")
    template = spec.get("template")
    if uid and not spec.get("manualSelector"):
        name = obj["metadata"].get("name", "")
        labels = {
            CONTROLLER_UID: uid,
            JOB_NAME: name,
            LEGACY_CONTROLLER_UID: uid,
            LEGACY_JOB_NAME: name,
        }
        if not spec.get("selector"):
            spec["selector"] = {"matchLabels": {CONTROLLER_UID: uid}}
        if isinstance(template, dict):
            meta = template.setdefault("metadata", {})
            if isinstance(meta, dict):
                meta["labels"] = {**(meta.get("labels") or {}), **labels}
    # SetDefaults_Job: a Job without labels gets its pod template's (the generated ones too).
    template_meta = template.get("metadata") if isinstance(template, dict) else None
    template_labels = template_meta.get("labels") if isinstance(template_meta, dict) else None
    job_meta = obj.get("metadata")
    if (
        isinstance(job_meta, dict)
        and isinstance(template_labels, dict)
        and not job_meta.get("labels")
    ):
        job_meta["labels"] = dict(template_labels)


def validate_job_spec(spec: Obj, path: str, old: Obj | None = None) -> None:
    template = spec.get("template") or {}
    pod_spec = PodSpec.model_validate(template.get("spec"))
    validate_pod_spec(pod_spec, f"{path}.template.spec")
    policy = pod_spec.restartPolicy or "Always"
    if policy not in ("OnFailure", "Never"):
        raise InvalidError(
            f"{path}.template.spec.restartPolicy",
            f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
        )
    for key in (
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ):
        value = spec.get(key)
        if value is not None and value < 0:
            raise InvalidError(
                f"{path}.{key}", f"Invalid value: {value}: must be greater than or equal to 0"
            )
    if spec.get("activeDeadlineSeconds") == 0:
        raise InvalidError(
            f"{path}.activeDeadlineSeconds", "Invalid value: 0: must be greater than 0"
        )
    indexed = spec.get("completionMode") == "Indexed"
    if indexed and spec.get("completions") is None:
        raise InvalidError(f"{path}.completions", "Required value: when completion mode is Indexed")
    if indexed and (spec.get("completions") or 0) > 100_000:
        raise InvalidError(
            f"{path}.completions",
            "Invalid value: must be less than or equal to 100000 when completion mode is Indexed",
        )
    if spec.get("backoffLimitPerIndex") is not None and not indexed:
        raise InvalidError(
            f"{path}.backoffLimitPerIndex", "Forbidden: requires indexed completion mode"
        )
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        raise InvalidError(
            f"{path}.maxFailedIndexes",
            "Required value: must be specified when backoffLimitPerIndex is specified",
        )
    failure_policy = spec.get("podFailurePolicy")
    if failure_policy is not None:
        if policy != "Never":
            raise InvalidError(
                f"{path}.template.spec.restartPolicy",
                f'Invalid value: "{policy}": only "Never" is supported when podFailurePolicy is specified',
            )
        for i, rule in enumerate(failure_policy.get("rules") or []):
            at = f"{path}.podFailurePolicy.rules[{i}]"
            has_codes = rule.get("onExitCodes") is not None
            has_conditions = bool(rule.get("onPodConditions"))
            if has_codes == has_conditions:
                raise InvalidError(
                    at,
                    "Invalid value: specify one of onExitCodes and onPodConditions, but not both",
                )
            if rule.get("action") == "FailIndex" and spec.get("backoffLimitPerIndex") is None:
                raise InvalidError(
                    f"{at}.action",
                    'Forbidden: the "FailIndex" action can only be used when backoffLimitPerIndex is set',
                )
            codes = rule.get("onExitCodes") or {}
            if has_codes:
                values = codes.get("values") or []
                if not values:
                    raise InvalidError(f"{at}.onExitCodes.values", "Required value")
                if codes.get("operator") == "In" and 0 in values:
                    raise InvalidError(
                        f"{at}.onExitCodes.values",
                        "Invalid value: 0: must not be 0 for the In operator",
                    )
                if len(set(values)) != len(values):
                    raise InvalidError(f"{at}.onExitCodes.values", "Duplicate value")
                container = codes.get("containerName")
                if container is not None and container not in {
                    c.name for c in [*pod_spec.containers, *(pod_spec.initContainers or [])]
                }:
                    raise InvalidError(
                        f"{at}.onExitCodes.containerName",
                        f'Invalid value: "{container}": must be one of the container or initContainer names in the pod template',
                    )
    success = spec.get("successPolicy")
    if success is not None:
        if not indexed:
            raise InvalidError(
                f"{path}.successPolicy", "Invalid value: requires indexed completion mode"
            )
        for i, rule in enumerate(success.get("rules") or []):
            if rule.get("succeededIndexes") is None and rule.get("succeededCount") is None:
                raise InvalidError(
                    f"{path}.successPolicy.rules[{i}]",
                    "Required value: at least one of succeededCount or succeededIndexes must be specified",
                )
    selector = spec.get("selector")
    labels = (template.get("metadata") or {}).get("labels") or {}
    if (
        selector
        and spec.get("manualSelector")
        and not matches(from_label_selector(selector), labels)
    ):
        raise InvalidError(
            f"{path}.template.metadata.labels",
            "Invalid value: `selector` does not match template `labels`",
        )


def _check_job(new: Obj, old: Obj | None) -> None:
    # The API server validates what SetDefaults_Job made of the body (an Indexed Job without
    # completions and parallelism gets 1 of each); on create the store checks before it
    # fills defaults.
    spec = copy.deepcopy(new.get("spec") or {})
    default_job_spec(spec)
    validate_job_spec(spec, "spec")
    if not spec.get("manualSelector") and old is None and spec.get("selector"):
        uid = (new.get("metadata") or {}).get("uid")
        if uid is None:
            raise InvalidError(
                "spec.selector",
                "Invalid value: `selector` not auto-generated; set manualSelector: true to "
                "choose your own selector",
            )
    if old is None:
        return
    before = old.get("spec") or {}
    for field in (
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "selector",
        "managedBy",
    ):
        if before.get(field) != spec.get(field):
            raise InvalidError(f"spec.{field}", "Invalid value: field is immutable")
    if before.get("completions") != spec.get("completions") and not (
        spec.get("completionMode") == "Indexed"
        and spec.get("completions") == spec.get("parallelism")
    ):
        raise InvalidError("spec.completions", "Invalid value: field is immutable")
    if before.get("template") != spec.get("template") and not before.get("suspend"):
        raise InvalidError("spec.template", "Invalid value: field is immutable")


# -- cronjobs ------------------------------------------------------------------------


def _default_cronjob(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job_template = spec.get("jobTemplate")
    if isinstance(job_template, dict) and isinstance(job_template.get("spec"), dict):
        default_job_spec(job_template["spec"])


def _check_cronjob(new: Obj, old: Obj | None) -> None:
    spec = new.get("spec") or {}
    name = (new.get("metadata") or {}).get("name") or ""
    if len(name) > 52:
        raise InvalidError(
            "metadata.name", f'Invalid value: "{name}": must be no more than 52 characters'
        )
    schedule = str(spec.get("schedule") or "")
    if "TZ=" in schedule or "CRON_TZ=" in schedule:
        raise InvalidError(
            "spec.schedule",
            f'Invalid value: "{schedule}": cannot use TZ or CRON_TZ in schedule, use timeZone '
            "field instead",
        )
    try:
        cron.Schedule.parse(schedule)
    except ValueError as exc:
        raise InvalidError("spec.schedule", f'Invalid value: "{schedule}": {exc}') from None
    zone = spec.get("timeZone")
    if zone is not None:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidError(
                "spec.timeZone", f'Invalid value: "{zone}": unknown time zone {zone}'
            ) from None
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    validate_job_spec(job_spec, "spec.jobTemplate.spec")
    if job_spec.get("selector") and not job_spec.get("manualSelector"):
        raise InvalidError(
            "spec.jobTemplate.spec.selector",
            "Invalid value: `selector` will be auto-generated",
        )
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        value = spec.get(key)
        if value is not None and value < 0:
            raise InvalidError(
                f"spec.{key}", f"Invalid value: {value}: must be greater than or equal to 0"
            )


# -- claims --------------------------------------------------------------------------


def _default_pvc(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if "storageClassName" not in spec and not spec.get("volumeName"):
        spec["storageClassName"] = DEFAULT_STORAGE_CLASS
    spec.setdefault("volumeMode", "Filesystem")


def _check_pvc(new: Obj, old: Obj | None) -> None:
    spec = new.get("spec") or {}
    if not spec.get("accessModes"):
        raise InvalidError("spec.accessModes", "Required value: at least 1 access mode is required")
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is None and not spec.get("volumeName"):
        raise InvalidError("spec.resources[storage]", "Required value")
    if old is None:
        return
    before = old.get("spec") or {}
    for key in ("accessModes", "storageClassName", "volumeMode", "selector", "dataSource"):
        if before.get(key) != spec.get(key):
            raise InvalidError(
                "spec",
                "Forbidden: spec is immutable after creation except resources.requests and "
                "volumeAttributesClassName for bound claims",
            )
    if before.get("volumeName") and before.get("volumeName") != spec.get("volumeName"):
        raise InvalidError("spec.volumeName", "Forbidden: field is immutable once bound")


def install(admission: Admission) -> None:
    """Register the defaults and checks into ``admission`` (idempotent)."""
    admission.register_default("pods", _default_pod)
    admission.register("pods", _check_pod)
    admission.register_default("jobs.batch", _default_job)
    admission.register("jobs.batch", _check_job)
    admission.register_default("cronjobs.batch", _default_cronjob)
    admission.register("cronjobs.batch", _check_cronjob)
    admission.register_default("persistentvolumeclaims", _default_pvc)
    admission.register("persistentvolumeclaims", _check_pvc)
