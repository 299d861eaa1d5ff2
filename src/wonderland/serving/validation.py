"""Semantic admission checks for Knative Serving kinds, as Knative's webhook makes them.

Registered through :mod:`wonderland.api.admission`; each raises
``InvalidError(field_path, message)`` naming the field and what to change.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from typing import Any

from wonderland.api.admission import Admission
from wonderland.autoscaler import AutoscalerConfig, ScalingSpec
from wonderland.autoscaler.config import parse_duration
from wonderland.errors import InvalidError

__all__ = [
    "RESERVED_ENV",
    "RESERVED_PORTS",
    "ROLLOUT_DURATION",
    "register_checks",
    "validate_template",
    "validate_traffic",
]

Obj = dict[str, Any]

RESERVED_ENV = ("PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION")
RESERVED_PORTS = (8012, 8013, 8022, 9090, 9091, 8008)
ALLOWED_PORT_NAMES = ("h2c", "http1", "")
ROLLOUT_DURATION = "serving.knative.dev/rollout-duration"
ROLLOUT_ALIAS = "serving.knative.dev/rolloutDuration"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# Set by the serving plugin: finds stored revisions for the unknown-revision check.
revision_exists: Callable[[str, str], bool] | None = None
# Set by the serving plugin: the current config-defaults / config-autoscaler.
current_limits: Callable[[], tuple[int, int, AutoscalerConfig]] | None = None
# Set by the serving plugin: the current config-features.
current_features: Callable[[], dict[str, str]] | None = None


def _limits() -> tuple[int, int, AutoscalerConfig]:
    if current_limits is not None:
        return current_limits()
    return 600, 1000, AutoscalerConfig()


def validate_template(template: Obj, owner_name: str | None, path: str) -> None:
    """A revision template (``spec.template`` of a Service or Configuration)."""
    meta = template.get("metadata") or {}
    name = meta.get("name")
    if name and owner_name and not str(name).startswith(owner_name + "-"):
        raise InvalidError(f"{path}.metadata.name", f'"{name}" must have prefix "{owner_name}-"')
    validate_revision_spec(template.get("spec") or {}, meta.get("annotations") or {}, path)


def validate_revision_spec(spec: Obj, annotations: dict[str, str], path: str) -> None:
    """A revision spec: containers, ports, env, volumes, timeout, concurrency, annotations."""
    max_timeout, max_cc, as_config = _limits()
    containers = spec.get("containers") or []
    cpath = f"{path}.spec.containers"
    if not containers:
        raise InvalidError(cpath, "missing field(s); a revision needs one container")
    volumes = _validate_volumes(spec, f"{path}.spec")
    serving = [i for i, c in enumerate(containers) if c.get("ports")]
    if len(containers) > 1 and len(serving) != 1:
        got = "neither" if not serving else "more than one"
        raise InvalidError(
            f"{cpath}[*].ports",
            f"expected exactly one container with a port, got {got}; the others are sidecars",
        )
    for i, c in enumerate(containers):
        at = f"{cpath}[{i}]"
        _validate_mounts(c.get("volumeMounts") or [], volumes, f"{at}.volumeMounts")
        if len(containers) > 1 and i not in serving and not c.get("command"):
            raise InvalidError(
                f"{at}.command",
                "a sidecar container needs a command here (its image is not run); "
                "give the command line that starts it",
            )
        _validate_container(c, at)
    timeout = spec.get("timeoutSeconds")
    if timeout is not None and not 0 <= timeout <= max_timeout:
        raise InvalidError(
            f"{path}.spec.timeoutSeconds",
            f"expected 0 <= {timeout} <= {max_timeout} (max-revision-timeout-seconds)",
        )
    cc = spec.get("containerConcurrency")
    if cc is not None and not 0 <= cc <= max_cc:
        raise InvalidError(f"{path}.spec.containerConcurrency", f"expected 0 <= {cc} <= {max_cc}")
    try:
        ScalingSpec.from_revision(as_config, annotations, int(cc or 0))
    except InvalidError as exc:
        raise InvalidError(
            f"{path}.{exc.field or 'metadata.annotations'}", exc.reason_text
        ) from None


def _features() -> dict[str, str]:
    if current_features is not None:
        return {k: str(v).strip().lower() for k, v in current_features().items()}
    return {}


def _validate_volumes(spec: Obj, path: str) -> dict[str, Obj]:
    """Knative's volume rules: configMap, secret, projected, emptyDir (feature
    ``kubernetes.podspec-volumes-emptydir``, on by default) and persistentVolumeClaim
    (``kubernetes.podspec-persistent-volume-claim``, off by default), each mounted."""
    features = _features()
    volumes: dict[str, Obj] = {}
    mounted = {
        m.get("name")
        for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
        for m in c.get("volumeMounts") or []
    }
    for i, volume in enumerate(spec.get("volumes") or []):
        at = f"{path}.volumes[{i}]"
        name = volume.get("name")
        if name in volumes:
            raise InvalidError(f"{at}.name", f'duplicate volume name "{name}"')
        if name not in mounted:
            raise InvalidError(f"{at}.name", f'volume with name "{name}" not mounted')
        for disallowed in ("hostPath", "downwardAPI"):
            if disallowed in volume:
                raise InvalidError(f"{at}.{disallowed}", "must not set the field(s)")
        if (
            "emptyDir" in volume
            and features.get("kubernetes.podspec-volumes-emptydir", "enabled") != "enabled"
        ):
            raise InvalidError(
                at, f"EmptyDir volume support is disabled, but found EmptyDir volume {name}"
            )
        claim = volume.get("persistentVolumeClaim")
        if claim is not None:
            if features.get("kubernetes.podspec-persistent-volume-claim", "disabled") != "enabled":
                raise InvalidError(
                    at,
                    "Persistent volume claim support is disabled, but found persistent volume "
                    f"claim {claim.get('claimName')}; enable it with "
                    "kubernetes.podspec-persistent-volume-claim: enabled in ConfigMap "
                    "knative-serving/config-features",
                )
            writes = features.get("kubernetes.podspec-persistent-volume-write", "disabled")
            if not claim.get("readOnly") and writes != "enabled":
                raise InvalidError(
                    at,
                    "Persistent volume write support is disabled, but found persistent volume "
                    f"claim {claim.get('claimName')} that is not read-only; enable it with "
                    "kubernetes.podspec-persistent-volume-write: enabled in ConfigMap "
                    "knative-serving/config-features",
                )
        volumes[str(name)] = volume
    return volumes


_RESERVED_PATHS = ("/", "/dev", "/dev/log")


def _validate_mounts(mounts: list[Obj], volumes: dict[str, Obj], path: str) -> None:
    seen: set[str] = set()
    for i, vm in enumerate(mounts):
        at = f"{path}[{i}]"
        volume = volumes.get(vm.get("name", ""))
        if volume is None:
            raise InvalidError(f"{at}.name", "volumeMount has no matching volume")
        mount_path = str(vm.get("mountPath") or "")
        clean = posixpath.normpath(mount_path) if mount_path else ""
        if not mount_path:
            raise InvalidError(f"{at}.mountPath", "missing field(s)")
        if clean in _RESERVED_PATHS:
            raise InvalidError(f"{at}.mountPath", f'mountPath "{clean}" is a reserved path')
        if not mount_path.startswith("/"):
            raise InvalidError(f"{at}.mountPath", f"invalid value: {mount_path}")
        if clean in seen:
            raise InvalidError(f"{at}.mountPath", f'invalid value: "{mount_path}" must be unique')
        seen.add(clean)
        writable = "emptyDir" in volume or "persistentVolumeClaim" in volume
        if not writable and not vm.get("readOnly"):
            raise InvalidError(
                f"{at}.readOnly", "volume mount should be readOnly for this type of volume"
            )
        claim = volume.get("persistentVolumeClaim") or {}
        if claim.get("readOnly") and not vm.get("readOnly"):
            raise InvalidError(f"{at}.readOnly", "volume is readOnly but volume mount is not")


# Container fields Knative's webhook refuses (its ContainerMask does not have them).
_DISALLOWED_CONTAINER_FIELDS = (
    "lifecycle",
    "stdin",
    "stdinOnce",
    "tty",
    "restartPolicy",
    "resizePolicy",
)


def _validate_container(c: Obj, at: str) -> None:
    for disallowed in _DISALLOWED_CONTAINER_FIELDS:
        if disallowed in c:
            raise InvalidError(f"{at}.{disallowed}", "must not set the field(s)")
    if not c.get("image") and not c.get("command"):
        raise InvalidError(f"{at}.image", "missing field(s); give an image or a command")
    ports = c.get("ports") or []
    if len(ports) > 1:
        raise InvalidError(f"{at}.ports", "more than one container port is set")
    if ports:
        port = ports[0]
        number = port.get("containerPort")
        if number in RESERVED_PORTS:
            raise InvalidError(
                f"{at}.ports.containerPort", f"{number} is a reserved port; choose another"
            )
        if not isinstance(number, int) or not 0 < number < 65536:
            raise InvalidError(f"{at}.ports.containerPort", "expected 1 <= containerPort <= 65535")
        if (port.get("name") or "") not in ALLOWED_PORT_NAMES:
            raise InvalidError(
                f"{at}.ports.name",
                f'invalid value "{port.get("name")}"; use "h2c", "http1" or leave it out',
            )
        if port.get("hostPort"):
            raise InvalidError(f"{at}.ports.hostPort", "must not be set")
    for i, env in enumerate(c.get("env") or []):
        if env.get("name") in RESERVED_ENV:
            raise InvalidError(
                f"{at}.env[{i}].name", f'"{env["name"]}" is a reserved environment variable'
            )


def serving_container(spec: Obj) -> tuple[int, Obj]:
    """The container that receives requests: the one with a port, else the only one."""
    containers = spec.get("containers") or [{}]
    for i, c in enumerate(containers):
        if c.get("ports"):
            return i, c
    return 0, containers[0]


def validate_traffic(
    traffic: list[Obj] | None,
    path: str,
    namespace: str,
    *,
    in_service: bool,
    byo_name: str | None = None,
) -> None:
    """``spec.traffic``: targets, tags, percentages (sum 100) and known revisions."""
    if traffic is None:
        return
    if not traffic:
        raise InvalidError(path, "missing field(s); give at least one traffic target")
    total = 0
    tags: dict[str, int] = {}
    for i, t in enumerate(traffic):
        at = f"{path}[{i}]"
        rev, cfg, latest = (
            t.get("revisionName"),
            t.get("configurationName"),
            t.get("latestRevision"),
        )
        if in_service and cfg:
            raise InvalidError(f"{at}.configurationName", "disallowed fields in a Service")
        if rev and cfg:
            raise InvalidError(
                f"{at}.configurationName, {at}.revisionName", "expected exactly one, got both"
            )
        if latest is True and rev:
            raise InvalidError(
                f"{at}.latestRevision",
                f'may not set revisionName "{rev}" when latestRevision is true',
            )
        if latest is False and not rev:
            raise InvalidError(
                f"{at}.latestRevision", "may not set false when revisionName is unset"
            )
        if not in_service and not rev and not cfg:
            raise InvalidError(
                f"{at}.configurationName, {at}.revisionName", "expected exactly one, got neither"
            )
        percent = t.get("percent")
        if percent is not None and not 0 <= percent <= 100:
            raise InvalidError(f"{at}.percent", f"expected 0 <= {percent} <= 100")
        total += percent or 0
        tag = t.get("tag")
        if tag:
            if not _DNS_LABEL.match(tag) or len(tag) > 63:
                raise InvalidError(f"{at}.tag", f'"{tag}" is not a DNS label (lowercase a-z0-9-)')
            if tag in tags:
                raise InvalidError(f"{at}.tag", f'Multiple definitions for "{tag}"')
            tags[tag] = i
        exists = revision_exists
        if rev and rev != byo_name and exists is not None and not exists(namespace, rev):
            raise InvalidError(
                f"{at}.revisionName",
                f'revision "{rev}" does not exist in namespace "{namespace}"; '
                "list them with 'wonderland get revisions'",
            )
        if t.get("url"):
            raise InvalidError(f"{at}.url", "disallowed fields; url is set by the platform")
    if total != 100:
        raise InvalidError(path, f"Traffic targets sum to {total}, want 100")


def _rollout(meta: Obj) -> None:
    ann = meta.get("annotations") or {}
    raw = ann.get(ROLLOUT_DURATION, ann.get(ROLLOUT_ALIAS))
    if raw is None:
        return
    where = f"metadata.annotations[{ROLLOUT_DURATION}]"
    seconds = parse_duration(str(raw), where)
    if seconds < 0:
        raise InvalidError(where, "rollout-duration must be positive")


def check_service(new: Obj, old: Obj | None) -> None:
    """Admission check for Services."""
    meta = new.get("metadata") or {}
    spec = new.get("spec") or {}
    template = spec.get("template") or {}
    byo = (template.get("metadata") or {}).get("name")
    if byo and not meta.get("name"):
        raise InvalidError(
            "spec.template.metadata.name",
            "a BYO revision name needs metadata.name, not generateName",
        )
    validate_template(template, meta.get("name") or None, "spec.template")
    validate_traffic(
        spec.get("traffic"),
        "spec.traffic",
        meta.get("namespace") or "default",
        in_service=True,
        byo_name=byo,
    )
    _rollout(meta)
    if old is not None and byo:
        old_t = (old.get("spec") or {}).get("template") or {}
        if (old_t.get("metadata") or {}).get("name") == byo and old_t != template:
            raise InvalidError(
                "spec.template.metadata.name",
                f'Saved BYO revision name "{byo}" cannot be reused for a changed template; '
                "give the new revision a new name",
            )


def check_configuration(new: Obj, old: Obj | None) -> None:
    """Admission check for Configurations."""
    meta = new.get("metadata") or {}
    validate_template(
        (new.get("spec") or {}).get("template") or {}, meta.get("name"), "spec.template"
    )


def check_route(new: Obj, old: Obj | None) -> None:
    """Admission check for Routes."""
    meta = new.get("metadata") or {}
    traffic = (new.get("spec") or {}).get("traffic")
    if traffic is not None:
        validate_traffic(
            traffic, "spec.traffic", meta.get("namespace") or "default", in_service=False
        )
    _rollout(meta)


def check_revision(new: Obj, old: Obj | None) -> None:
    """Admission check for Revisions (their spec is immutable)."""
    if old is not None and (old.get("spec") or {}) != (new.get("spec") or {}):
        raise InvalidError("spec", "a Revision is immutable; change its Configuration or Service")
    meta = new.get("metadata") or {}
    try:
        validate_revision_spec(new.get("spec") or {}, meta.get("annotations") or {}, "@")
    except InvalidError as exc:
        raise InvalidError((exc.field or "spec").replace("@.", ""), exc.reason_text) from None


def register_checks(admission: Admission) -> None:
    """Register the serving admission checks into ``admission``."""
    admission.register("services.serving.knative.dev", check_service)
    admission.register("configurations.serving.knative.dev", check_configuration)
    admission.register("routes.serving.knative.dev", check_route)
    admission.register("revisions.serving.knative.dev", check_revision)
