"""Semantic admission checks for Knative Serving kinds, as Knative's webhook makes them.

:class:`ServingChecks` holds them for one platform (the revisions of its store, its
config-defaults, config-autoscaler and config-features); :func:`register_checks` puts them
into that platform's admission. Each raises ``InvalidError(field_path, message)`` naming
the field and what to change.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wonderland.api.admission import Admission
from wonderland.autoscaler import AutoscalerConfig, ScalingSpec
from wonderland.autoscaler.config import parse_duration
from wonderland.errors import InvalidError

__all__ = [
    "RESERVED_ENV",
    "RESERVED_PORTS",
    "ROLLOUT_DURATION",
    "ServingChecks",
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

Limits = tuple[int, int, AutoscalerConfig]


def _default_limits() -> Limits:
    return 600, 1000, AutoscalerConfig()


def _no_features() -> dict[str, str]:
    return {}


def validate_template(
    template: Obj,
    owner_name: str | None,
    path: str,
    limits: Limits | None = None,
    features: dict[str, str] | None = None,
) -> None:
    """A revision template (``spec.template`` of a Service or Configuration)."""
    meta = template.get("metadata") or {}
    name = meta.get("name")
    if name and owner_name and not str(name).startswith(owner_name + "-"):
        raise InvalidError(f"{path}.metadata.name", f'"{name}" must have prefix "{owner_name}-"')
    validate_revision_spec(
        template.get("spec") or {}, meta.get("annotations") or {}, path, limits, features
    )


def validate_revision_spec(
    spec: Obj,
    annotations: dict[str, str],
    path: str,
    limits: Limits | None = None,
    features: dict[str, str] | None = None,
) -> None:
    """A revision spec: containers, ports, env, volumes, timeout, concurrency, annotations;
    ``limits`` and ``features`` are the platform's config (None: Knative's defaults)."""
    max_timeout, max_cc, as_config = limits or _default_limits()
    containers = spec.get("containers") or []
    cpath = f"{path}.spec.containers"
    if not containers:
        raise InvalidError(cpath, "missing field(s); a revision needs one container")
    volumes = _validate_volumes(spec, f"{path}.spec", features or {})
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


def _validate_volumes(spec: Obj, path: str, features: dict[str, str]) -> dict[str, Obj]:
    """Knative's volume rules: configMap, secret, projected, emptyDir (feature
    ``kubernetes.podspec-volumes-emptydir``, on by default) and persistentVolumeClaim
    (``kubernetes.podspec-persistent-volume-claim``, off by default), each mounted."""
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
    exists: Callable[[str, str], bool] | None = None,
) -> None:
    """``spec.traffic``: targets, tags, percentages (sum 100) and, with ``exists``, known
    revisions."""
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


@dataclass(frozen=True)
class ServingChecks:
    """Knative's webhook for one platform: ``revision_exists`` finds its stored revisions
    (the unknown-revision check), ``limits`` and ``features`` read its current
    config-defaults / config-autoscaler and config-features. Left out: Knative's defaults
    and no revision lookup (offline validation, :func:`register_checks` without checks)."""

    revision_exists: Callable[[str, str], bool] | None = None
    limits: Callable[[], Limits] = _default_limits
    features: Callable[[], dict[str, str]] = _no_features

    def current_limits(self) -> Limits:
        return self.limits()

    def current_features(self) -> dict[str, str]:
        return {k: str(v).strip().lower() for k, v in self.features().items()}

    def check_service(self, new: Obj, old: Obj | None) -> None:
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
        validate_template(
            template,
            meta.get("name") or None,
            "spec.template",
            self.current_limits(),
            self.current_features(),
        )
        validate_traffic(
            spec.get("traffic"),
            "spec.traffic",
            meta.get("namespace") or "default",
            in_service=True,
            byo_name=byo,
            exists=self.revision_exists,
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

    def check_configuration(self, new: Obj, old: Obj | None) -> None:
        """Admission check for Configurations."""
        meta = new.get("metadata") or {}
        validate_template(
            (new.get("spec") or {}).get("template") or {},
            meta.get("name"),
            "spec.template",
            self.current_limits(),
            self.current_features(),
        )

    def check_route(self, new: Obj, old: Obj | None) -> None:
        """Admission check for Routes."""
        meta = new.get("metadata") or {}
        traffic = (new.get("spec") or {}).get("traffic")
        if traffic is not None:
            validate_traffic(
                traffic,
                "spec.traffic",
                meta.get("namespace") or "default",
                in_service=False,
                exists=self.revision_exists,
            )
        _rollout(meta)

    def check_revision(self, new: Obj, old: Obj | None) -> None:
        """Admission check for Revisions (their spec is immutable)."""
        if old is not None and (old.get("spec") or {}) != (new.get("spec") or {}):
            raise InvalidError(
                "spec", "a Revision is immutable; change its Configuration or Service"
            )
        meta = new.get("metadata") or {}
        try:
            validate_revision_spec(
                new.get("spec") or {},
                meta.get("annotations") or {},
                "@",
                self.current_limits(),
                self.current_features(),
            )
        except InvalidError as exc:
            raise InvalidError((exc.field or "spec").replace("@.", ""), exc.reason_text) from None


def register_checks(admission: Admission, checks: ServingChecks | None = None) -> None:
    """Register the serving admission checks of ``checks`` (Knative's defaults when None)
    into ``admission``."""
    checks = ServingChecks() if checks is None else checks
    admission.register("services.serving.knative.dev", checks.check_service)
    admission.register("configurations.serving.knative.dev", checks.check_configuration)
    admission.register("routes.serving.knative.dev", checks.check_route)
    admission.register("revisions.serving.knative.dev", checks.check_revision)
