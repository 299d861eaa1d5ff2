"""What the kubelet works out before a container instance starts: its image, environment,
mounts, user and cgroup.

- **image**: mapped to a local build (``wonderland.yaml``) and built once, with the
  kubelet's ``Pulling``/``Pulled`` events; an unmapped image with a ``command`` runs that
  command on this machine; an unmapped image without one waits in ``ErrImagePull``.
- **environment**: the node's base (PATH, proxies to the gateway, what plugins give every
  pod such as ``MLFLOW_TRACKING_URI``), the image's, ``HOSTNAME``,
  the GPUs the scheduler gave this container (``CUDA_VISIBLE_DEVICES``), then the container's
  ``envFrom``/``env`` (a missing ConfigMap or Secret: ``CreateContainerConfigError``).
- **mounts**: each ``volumeMount`` (``subPath``, ``subPathExpr``, ``readOnly``) as a bind in
  the container's private mount namespace; a relative ``mountPath`` fails as containerd
  fails it (``CreateContainerError``).
- **user**: ``runAsUser``/``runAsGroup`` when the daemon runs as root; ``runAsNonRoot`` checked.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from wonderland.api import quantity
from wonderland.api.schemas.core import Container, PodObject
from wonderland.errors import NotFoundError, WonderlandError
from wonderland.kubeconfig import kubeconfig_path
from wonderland.runtime import cgroups, containers, sandbox
from wonderland.runtime.container_runner import ContainerRunner
from wonderland.runtime.env import PodInfo, container_env, expand
from wonderland.runtime.images import BuiltImage, ImageResolver
from wonderland.runtime.scheduler import Admission, container_limits
from wonderland.runtime.volumes import PreparedVolume, resource_field

__all__ = ["LaunchContext", "LaunchHost", "Waiting", "plan_launch"]

Obj = dict[str, Any]


class Waiting(WonderlandError):
    """A container cannot start yet: ``reason`` is its waiting reason, ``event`` the reason
    of the kubelet's event."""

    def __init__(self, reason: str, message: str, event: str = "Failed") -> None:
        super().__init__(message)
        self.reason = reason
        self.event = event


class LaunchHost(Protocol):
    """The kubelet's side: builds, the sandbox, cgroups, the node and lookups."""

    state_dir: Path
    resolver: ImageResolver
    sandbox: sandbox.SandboxSupport
    cgroups: cgroups.CgroupDriver

    def base_env(self) -> dict[str, str]: ...

    def pod_env(self, annotations: Mapping[str, str]) -> dict[str, str]: ...

    def lookup(self, resource: str, namespace: str, name: str) -> Obj | None: ...


class LaunchContext(Protocol):
    """The pod's side: what it is, what it was given, where its files go."""

    raw: Obj
    pod: PodObject
    name: str
    namespace: str
    uid: str
    admission: Admission | None
    mounted: dict[str, PreparedVolume]

    @property
    def node_name(self) -> str: ...

    def pod_dir(self) -> Path: ...

    def event(self, type: str, reason: str, message: str) -> None: ...

    def publish(self) -> None: ...


async def _image(
    ctx: LaunchContext, host: LaunchHost, runner: ContainerRunner
) -> BuiltImage | None:
    spec = runner.spec
    image = spec.image or ""
    if not image:
        if spec.command:
            return None
        raise Waiting("InvalidImageName", "the container has neither an image nor a command")
    try:
        host.resolver.resolve(image)
    except NotFoundError as exc:
        try:
            provided = host.resolver.provided(image)
        except WonderlandError as missing:
            raise Waiting("ErrImagePull", str(missing)) from None
        if provided is not None:
            ctx.event(
                "Normal",
                "Pulled",
                f'Container image "{image}" already present on machine '
                f"(the Python environment {provided.venv})",
            )
            return provided
        if spec.command:
            return None
        raise Waiting("ErrImagePull", str(exc)) from None
    except WonderlandError as exc:
        raise Waiting("ErrImagePull", str(exc)) from None
    started = time.monotonic()

    def progress(line: str) -> None:
        runner.waiting("ContainerCreating", line)
        ctx.publish()

    ctx.event("Normal", "Pulling", f'Pulling image "{image}"')
    try:
        built = await host.resolver.build(image, progress)
    except WonderlandError as exc:
        raise Waiting("ErrImagePull", str(exc)) from None
    ctx.event(
        "Normal",
        "Pulled",
        f'Successfully pulled image "{image}" in {time.monotonic() - started:.3f}s '
        f"(built from {built.context})",
    )
    return built


def _environment(
    ctx: LaunchContext,
    host: LaunchHost,
    runner: ContainerRunner,
    built: BuiltImage | None,
    where: str,
) -> dict[str, str]:
    spec = runner.spec
    meta = ctx.raw["metadata"]
    info = PodInfo(
        name=ctx.name,
        namespace=ctx.namespace,
        uid=ctx.uid,
        node_name=ctx.node_name,
        service_account=ctx.pod.spec.serviceAccountName or "default",
        labels=meta.get("labels") or {},
        annotations=meta.get("annotations") or {},
    )
    env = host.base_env()
    env.update(host.pod_env(meta.get("annotations") or {}))
    image_env = dict(built.env) if built is not None else {}
    if "VIRTUAL_ENV" in image_env:
        env["PATH"] = str(Path(image_env["VIRTUAL_ENV"]) / "bin") + os.pathsep + env["PATH"]
    env.update(image_env)
    env["HOSTNAME"] = ctx.pod.spec.hostname or ctx.name
    if ctx.pod.spec.automountServiceAccountToken is True:
        # Kubernetes mounts API credentials unless told not to; here a Pod asks for them
        # explicitly and gets the platform's kubeconfig (which clients read from KUBECONFIG)
        kubeconfig = kubeconfig_path(host.state_dir)
        if kubeconfig.exists():
            env["KUBECONFIG"] = str(kubeconfig)
    gpus = ctx.admission.container_gpus.get(runner.name, ()) if ctx.admission else ()
    # as the NVIDIA device plugin does: a container sees the GPUs it was given, no other
    env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    env["NVIDIA_VISIBLE_DEVICES"] = ",".join(gpus) if gpus else "void"

    def lookup(resource: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return host.lookup(resource, namespace, name)

    def resources(ref: Mapping[str, Any]) -> str:
        return resource_field(
            ctx.pod,
            ref.get("resource", ""),
            ref.get("containerName") or spec.name,
            ref.get("divisor"),
        )

    try:
        declared = container_env(
            spec.model_dump(exclude_none=True), info, lookup, where, resource_field=resources
        )
    except WonderlandError as exc:
        raise Waiting("CreateContainerConfigError", str(exc)) from None
    env.update(declared)
    return env


def _mounts(
    ctx: LaunchContext,
    host: LaunchHost,
    runner: ContainerRunner,
    env: Mapping[str, str],
    cwd: str | None,
) -> sandbox.MountPlan | None:
    mounts: list[sandbox.Mount] = []
    for m in runner.spec.volumeMounts or []:
        if not m.mountPath.startswith("/"):
            raise Waiting(
                "CreateContainerError",
                f'failed to create the container: mount destination "{m.mountPath}" is not '
                f"absolute; write the mountPath from the root, e.g. /{m.mountPath}",
            )
        prepared = ctx.mounted.get(m.name)
        if prepared is None:
            raise Waiting(
                "CreateContainerConfigError", f'volumeMount "{m.name}" names no volume of the pod'
            )
        source = prepared.path
        sub = expand(m.subPathExpr, env) if m.subPathExpr else m.subPath
        if sub:
            source = source / sub
            if prepared.kind in ("configMap", "secret", "projected", "downwardAPI"):
                source = source.resolve()
            elif not source.exists():
                source.mkdir(parents=True, exist_ok=True)
        mounts.append(
            sandbox.Mount(str(source), m.mountPath, bool(m.readOnly) or prepared.read_only)
        )
    if (
        cwd
        and not os.path.isdir(cwd)
        and not any(cwd == t.target or cwd.startswith(t.target.rstrip("/") + "/") for t in mounts)
    ):
        # as runc does, a missing working directory is created (in the container only)
        scratch_cwd = ctx.pod_dir() / "workdir" / runner.name
        scratch_cwd.mkdir(parents=True, exist_ok=True)
        mounts.append(sandbox.Mount(str(scratch_cwd), cwd))
    if not mounts:
        return None
    if not host.sandbox.available:
        raise Waiting(
            "CreateContainerError",
            f"this container needs a private mount namespace, and {host.sandbox.reason}",
        )
    scratch = ctx.pod_dir() / "rootfs" / runner.name
    scratch.mkdir(parents=True, exist_ok=True)
    return sandbox.MountPlan(tuple(mounts), str(scratch), cwd)


def _first(*values: int | None) -> int | None:
    for value in values:
        if value is not None:
            return value
    return None


async def plan_launch(
    ctx: LaunchContext, host: LaunchHost, runner: ContainerRunner, where: str
) -> containers.Launch:
    """Everything the next instance of ``runner`` starts with; raises :class:`Waiting`."""
    spec = runner.spec
    built = await _image(ctx, host, runner)
    env = _environment(ctx, host, runner, built, where)
    runner.env = env
    if spec.command:
        argv = [*spec.command, *(spec.args or [])]
    elif built is not None and built.argv:
        argv = [*built.argv, *(spec.args or [])]
    elif built is not None:
        raise Waiting(
            "CreateContainerError",
            f'image "{spec.image}" has no default command here; give the container a command',
        )
    else:
        raise Waiting("CreateContainerError", "the container has no command to run")
    argv = [expand(a, env) for a in argv]
    cwd = spec.workingDir or _default_workdir(ctx, runner, built)
    mounts = _mounts(ctx, host, runner, env, cwd)
    pod_sc = ctx.pod.spec.securityContext
    c_sc = spec.securityContext
    uid = _first(c_sc.runAsUser if c_sc else None, pod_sc.runAsUser if pod_sc else None)
    gid = _first(c_sc.runAsGroup if c_sc else None, pod_sc.runAsGroup if pod_sc else None)
    run_as_non_root = (c_sc.runAsNonRoot if c_sc else None) or (
        pod_sc.runAsNonRoot if pod_sc else None
    )
    if run_as_non_root and (uid if uid is not None else os.geteuid()) == 0:
        raise Waiting(
            "CreateContainerConfigError",
            "container has runAsNonRoot and image will run as root (set runAsUser)",
        )
    groups: tuple[int, ...] = ()
    if os.geteuid() == 0:
        if uid is not None and gid is None:
            gid = uid
        groups = tuple(pod_sc.supplementalGroups or []) if pod_sc else ()
    else:
        uid = gid = None  # only root can switch users; the process runs as the daemon's
    limits = container_limits(spec)
    cgroup = host.cgroups.create(
        f"{ctx.uid}_{runner.name}_{runner.restart_count}",
        cgroups.Limits(
            memory=limits.get("memory"), cpu_limit=limits.get("cpu"), cpu_request=_cpu_request(spec)
        ),
    )
    runner.cgroup = cgroup
    return containers.Launch(
        argv=tuple(argv),
        env=env,
        cwd=cwd,
        cgroup_procs=tuple(str(p) for p in cgroup.join_paths()),
        mounts=mounts,
        uid=uid,
        gid=gid,
        supplemental_groups=groups,
    )


def _default_workdir(
    ctx: LaunchContext, runner: ContainerRunner, built: BuiltImage | None
) -> str | None:
    if built is None:
        return None
    if built.pod_workdir:
        folder = ctx.pod_dir() / "work" / runner.name
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder)
    return str(built.context)


def _cpu_request(spec: Container) -> int | None:
    res = spec.resources
    if res is None:
        return None
    value = (res.requests or {}).get("cpu", (res.limits or {}).get("cpu"))
    return quantity.millis(value) if value is not None else None
