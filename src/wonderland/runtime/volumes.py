"""A pod's volumes as folders on the host, ready to be mounted at their ``mountPath``.

As the kubelet's volume plugins do:

- ``emptyDir``: a folder per pod under the state directory, removed with the pod; with
  ``medium: Memory`` (and for every secret) a folder on ``/dev/shm``, so it never touches
  the disk. ``sizeLimit`` is checked by the kubelet, which evicts the pod above it.
- ``configMap``, ``secret``, ``downwardAPI``, ``projected``: files written by the atomic
  writer (a ``..<time>`` folder, the ``..data`` link switched in one rename, one link per
  key), rewritten in place when the source changes, as a kubelet does (``subPath`` mounts
  keep what they saw first, as on a cluster).
- a projected ``serviceAccountToken``: a token from the platform's issuer
  (:mod:`wonderland.tokens`) for the audience asked, renewed after 80 % of its lifetime.
- ``hostPath``: the host path itself, checked or created according to ``type``.
- ``persistentVolumeClaim``: the folder of the PersistentVolume the claim is bound to.

A source that is missing raises :class:`VolumeError` with the kubelet's event text
(``MountVolume.SetUp failed for volume "cfg" : configmap "app" not found``); the pod waits
in ``ContainerCreating`` and is retried when the object appears.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from wonderland.api import quantity
from wonderland.api.schemas.core import (
    DownwardAPIVolumeFile,
    KeyToPath,
    PodObject,
    Volume,
)
from wonderland.errors import WonderlandError
from wonderland.tokens import TokenIssuer

__all__ = ["PreparedVolume", "VolumeError", "VolumeManager", "dir_size", "pod_dir_name"]

Obj = dict[str, Any]
Lookup = Callable[[str, str, str], "Obj | None"]
# A projected token's lifetime and audience when the pod does not say (the API server's).
DEFAULT_TOKEN_SECONDS = 3600
DEFAULT_TOKEN_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
DEFAULT_MODE = 0o644


class VolumeError(WonderlandError):
    """A volume cannot be set up yet: ``reason`` is the event reason (``FailedMount``)."""

    def __init__(self, message: str, reason: str = "FailedMount") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class PreparedVolume:
    """A volume ready to mount: the host folder (or file) and whether it is read-only."""

    name: str
    path: Path
    read_only: bool
    kind: str


def pod_dir_name(namespace: str, name: str, uid: str) -> str:
    return f"{namespace}_{name}_{uid}"


def dir_size(path: Path) -> int:
    """Bytes used by the files under ``path`` (``du``)."""
    total = 0
    for root, _dirs, files in os.walk(path, onerror=lambda _: None):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def _timestamp_dir() -> str:
    now = datetime.now(UTC)
    return ".." + now.strftime("%Y_%m_%d_%H_%M_%S.") + f"{now.microsecond:06d}000"


def write_atomic(target: Path, files: Mapping[str, tuple[bytes, int]], dir_mode: int) -> bool:
    """The kubelet's AtomicWriter: ``files`` (relative path -> (content, mode)) appear in
    ``target`` all at once; returns whether anything changed."""
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, dir_mode)
    data_link = target / "..data"
    current: dict[str, tuple[bytes, int]] = {}
    if data_link.is_symlink():
        old = target / os.readlink(data_link)
        for root, _dirs, names in os.walk(old):
            for name in names:
                full = Path(root) / name
                rel = str(full.relative_to(old))
                with contextlib.suppress(OSError):
                    current[rel] = (full.read_bytes(), stat.S_IMODE(full.stat().st_mode))
        if current == dict(files):
            return False
    fresh = target / _timestamp_dir()
    fresh.mkdir()
    for rel, (content, mode) in files.items():
        path = fresh / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chmod(path, mode)
    tmp = target / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(fresh.name, tmp)
    old_dir = os.readlink(data_link) if data_link.is_symlink() else None
    os.replace(tmp, data_link)
    wanted = {rel.split("/", 1)[0] for rel in files}
    for entry in os.listdir(target):
        if entry.startswith(".."):
            continue
        if entry not in wanted:
            (target / entry).unlink()
    for top in wanted:
        link = target / top
        if not link.is_symlink():
            os.symlink(f"..data/{top}", link)
    if old_dir and old_dir != fresh.name:
        shutil.rmtree(target / old_dir, ignore_errors=True)
    return True


def _decode(obj: Obj, resource: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if resource == "secrets":
        for key, value in (obj.get("data") or {}).items():
            out[key] = base64.b64decode(str(value))
        for key, value in (obj.get("stringData") or {}).items():
            out[key] = str(value).encode()
    else:
        for key, value in (obj.get("data") or {}).items():
            out[key] = str(value).encode()
        for key, value in (obj.get("binaryData") or {}).items():
            out[key] = base64.b64decode(str(value))
    return out


class VolumeManager:
    """Sets up, refreshes and removes the volumes of the pods of one kubelet."""

    def __init__(
        self,
        state_dir: Path,
        lookup: Lookup,
        pv_path: Callable[[str, str], Path],
        shm_root: Path | None = None,
        tokens: TokenIssuer | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.lookup = lookup
        self.pv_path = pv_path
        self.tokens = tokens
        # (pod uid, volume, path) -> (token, when issued, lifetime): reused until 80 % of
        # its lifetime has passed, as the kubelet's token manager does, then issued again.
        self._issued: dict[tuple[str, str, str], tuple[bytes, float, int]] = {}
        digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
        shm = Path("/dev/shm")
        self.memory_root = shm_root or (
            shm / f"wonderland-{digest}"
            if shm.is_dir() and os.access(shm, os.W_OK)
            else state_dir / "pods-memory"
        )

    def pod_dir(self, pod: PodObject) -> Path:
        meta = pod.metadata
        return self.state_dir / "pods" / pod_dir_name(meta["namespace"], meta["name"], meta["uid"])

    def memory_dir(self, pod: PodObject) -> Path:
        return self.memory_root / str(pod.metadata["uid"])

    # -- setting up ---------------------------------------------------------------------

    def prepare(self, pod: PodObject, fields: Mapping[str, str]) -> dict[str, PreparedVolume]:
        """Every volume of the pod, set up; raises VolumeError for the first that cannot."""
        out: dict[str, PreparedVolume] = {}
        for volume in pod.spec.volumes or []:
            out[volume.name] = self._prepare(pod, volume, fields)
        return out

    def refresh(self, pod: PodObject, fields: Mapping[str, str]) -> None:
        """Rewrite configMap/secret/downwardAPI/projected volumes from their sources now."""
        for volume in pod.spec.volumes or []:
            if volume.configMap or volume.secret or volume.downwardAPI or volume.projected:
                with contextlib.suppress(VolumeError, OSError):
                    self._prepare(pod, volume, fields)

    def _prepare(self, pod: PodObject, volume: Volume, fields: Mapping[str, str]) -> PreparedVolume:
        ns = str(pod.metadata["namespace"])
        base = self.pod_dir(pod) / "volumes"
        name = volume.name
        if volume.emptyDir is not None:
            if volume.emptyDir.medium == "Memory":
                path = self.memory_dir(pod) / "empty-dir" / name
            else:
                path = base / "kubernetes.io~empty-dir" / name
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o777)
            return PreparedVolume(name, path, False, "emptyDir")
        if volume.hostPath is not None:
            return PreparedVolume(name, self._host_path(volume), False, "hostPath")
        if volume.persistentVolumeClaim is not None:
            claim = volume.persistentVolumeClaim
            path = self.pv_path(ns, claim.claimName)
            return PreparedVolume(name, path, bool(claim.readOnly), "persistentVolumeClaim")
        if volume.configMap is not None:
            cm = volume.configMap
            files = self._keys(
                ns, "configmaps", cm.name or "", cm.items, cm.optional, name, cm.defaultMode
            )
            path = base / "kubernetes.io~configmap" / name
            write_atomic(path, files, 0o755)
            return PreparedVolume(name, path, True, "configMap")
        if volume.secret is not None:
            sec = volume.secret
            files = self._keys(
                ns, "secrets", sec.secretName or "", sec.items, sec.optional, name, sec.defaultMode
            )
            path = self.memory_dir(pod) / "secret" / name
            write_atomic(path, files, 0o755)
            return PreparedVolume(name, path, True, "secret")
        if volume.downwardAPI is not None:
            dapi = volume.downwardAPI
            files = self._downward(pod, dapi.items or [], dapi.defaultMode, fields, name)
            path = base / "kubernetes.io~downward-api" / name
            write_atomic(path, files, 0o755)
            return PreparedVolume(name, path, True, "downwardAPI")
        if volume.projected is not None:
            return self._projected(pod, volume, fields)
        raise VolumeError(f'volume "{name}" has no source', reason="FailedMount")

    def _projected(
        self, pod: PodObject, volume: Volume, fields: Mapping[str, str]
    ) -> PreparedVolume:
        assert volume.projected is not None
        ns = str(pod.metadata["namespace"])
        mode = volume.projected.defaultMode
        files: dict[str, tuple[bytes, int]] = {}
        secret = False
        for source in volume.projected.sources or []:
            if source.configMap is not None:
                cm = source.configMap
                files.update(
                    self._keys(
                        ns, "configmaps", cm.name or "", cm.items, cm.optional, volume.name, mode
                    )
                )
            elif source.secret is not None:
                secret = True
                sec = source.secret
                files.update(
                    self._keys(
                        ns, "secrets", sec.name or "", sec.items, sec.optional, volume.name, mode
                    )
                )
            elif source.downwardAPI is not None:
                files.update(
                    self._downward(pod, source.downwardAPI.items or [], mode, fields, volume.name)
                )
            elif source.serviceAccountToken is not None:
                secret = True
                sat = source.serviceAccountToken
                token = self._token(pod, volume.name, sat.path, sat.audience, sat.expirationSeconds)
                files[sat.path] = (token, mode if mode is not None else 0o644)
        if secret:
            path = self.memory_dir(pod) / "projected" / volume.name
        else:
            path = self.pod_dir(pod) / "volumes" / "kubernetes.io~projected" / volume.name
        write_atomic(path, files, 0o755)
        return PreparedVolume(volume.name, path, True, "projected")

    def _keys(
        self,
        namespace: str,
        resource: str,
        source: str,
        items: list[KeyToPath] | None,
        optional: bool | None,
        volume: str,
        default_mode: int | None,
    ) -> dict[str, tuple[bytes, int]]:
        kind = "secret" if resource == "secrets" else "configmap"
        obj = self.lookup(resource, namespace, source)
        mode = DEFAULT_MODE if default_mode is None else default_mode
        if obj is None:
            if optional:
                return {}
            raise VolumeError(
                f'MountVolume.SetUp failed for volume "{volume}" : {kind} "{source}" not found'
            )
        data = _decode(obj, resource)
        if not items:
            return {key: (value, mode) for key, value in data.items()}
        out: dict[str, tuple[bytes, int]] = {}
        for item in items:
            if item.key not in data:
                if optional:
                    continue
                raise VolumeError(
                    f'MountVolume.SetUp failed for volume "{volume}" : {kind} references '
                    f"non-existent config key: {item.key}"
                )
            out[item.path] = (data[item.key], item.mode if item.mode is not None else mode)
        return out

    def _downward(
        self,
        pod: PodObject,
        items: list[DownwardAPIVolumeFile],
        default_mode: int | None,
        fields: Mapping[str, str],
        volume: str,
    ) -> dict[str, tuple[bytes, int]]:
        mode = DEFAULT_MODE if default_mode is None else default_mode
        out: dict[str, tuple[bytes, int]] = {}
        meta = pod.metadata
        for item in items:
            item_mode = item.mode if item.mode is not None else mode
            if item.fieldRef is not None:
                path = item.fieldRef.fieldPath
                if path in ("metadata.labels", "metadata.annotations"):
                    values = meta.get(path.split(".")[1]) or {}
                    text = "".join(f'{k}="{_escape(v)}"\n' for k, v in sorted(values.items()))
                else:
                    if path not in fields:
                        raise VolumeError(
                            f'MountVolume.SetUp failed for volume "{volume}" : fieldRef '
                            f"{path!r} is not supported; use metadata.name, metadata.namespace, "
                            "metadata.uid, metadata.labels, metadata.annotations or "
                            "metadata.labels['key']"
                        )
                    text = fields[path]
                out[item.path] = (text.encode(), item_mode)
            elif item.resourceFieldRef is not None:
                ref = item.resourceFieldRef
                out[item.path] = (
                    resource_field(pod, ref.resource, ref.containerName, ref.divisor).encode(),
                    item_mode,
                )
        return out

    def _host_path(self, volume: Volume) -> Path:
        assert volume.hostPath is not None
        source = volume.hostPath
        path = Path(source.path)
        kind = source.type or ""
        where = f'MountVolume.SetUp failed for volume "{volume.name}" : hostPath type check failed: {path}'
        if kind == "DirectoryOrCreate":
            path.mkdir(parents=True, exist_ok=True, mode=0o755)
        elif kind == "FileOrCreate":
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.touch(mode=0o644)
        elif kind == "Directory" and not path.is_dir():
            raise VolumeError(f"{where} is not a directory")
        elif kind == "File" and not path.is_file():
            raise VolumeError(f"{where} is not a file")
        elif kind == "Socket" and not (path.exists() and stat.S_ISSOCK(path.stat().st_mode)):
            raise VolumeError(f"{where} is not a socket file")
        elif kind == "CharDevice" and not (path.exists() and stat.S_ISCHR(path.stat().st_mode)):
            raise VolumeError(f"{where} is not a character device")
        elif kind == "BlockDevice" and not (path.exists() and stat.S_ISBLK(path.stat().st_mode)):
            raise VolumeError(f"{where} is not a block device")
        elif not kind and not path.exists():
            # An unset type mounts whatever is there; a missing path becomes a directory
            # (as Docker creates it).
            path.mkdir(parents=True, exist_ok=True, mode=0o755)
        return path

    # -- sizes and removal -----------------------------------------------------------

    def empty_dir_over_limit(self, pod: PodObject) -> str | None:
        """The eviction message when an emptyDir uses more than its ``sizeLimit``."""
        for volume in pod.spec.volumes or []:
            empty = volume.emptyDir
            if empty is None or empty.sizeLimit is None:
                continue
            limit = quantity.parse(empty.sizeLimit, f"volumes[{volume.name}].emptyDir.sizeLimit")
            if empty.medium == "Memory":
                path = self.memory_dir(pod) / "empty-dir" / volume.name
            else:
                path = self.pod_dir(pod) / "volumes" / "kubernetes.io~empty-dir" / volume.name
            if path.exists() and dir_size(path) > limit:
                return (
                    f'Usage of EmptyDir volume "{volume.name}" exceeds the limit '
                    f'"{empty.sizeLimit}". '
                )
        return None

    def _token(
        self, pod: PodObject, volume: str, path: str, audience: str | None, seconds: int | None
    ) -> bytes:
        if self.tokens is None:
            raise VolumeError(
                f'MountVolume.SetUp failed for volume "{volume}" : this kubelet has no token '
                "issuer for serviceAccountToken sources"
            )
        meta = pod.metadata
        key = (str(meta["uid"]), volume, path)
        ttl = seconds or DEFAULT_TOKEN_SECONDS
        cached = self._issued.get(key)
        if cached is not None and time.monotonic() - cached[1] < 0.8 * cached[2]:
            return cached[0]
        token = self.tokens.issue(
            str(meta["namespace"]),
            pod.spec.serviceAccountName or "default",
            (audience or DEFAULT_TOKEN_AUDIENCE,),
            ttl,
            pod_name=str(meta["name"]),
            pod_uid=str(meta["uid"]),
        ).encode()
        self._issued[key] = (token, time.monotonic(), ttl)
        return token

    def tokens_due(self, pod: PodObject) -> bool:
        """True when a token of this pod has lived 80 % of its lifetime: refresh() renews it."""
        uid = str(pod.metadata["uid"])
        now = time.monotonic()
        return any(
            key[0] == uid and now - issued >= 0.8 * ttl
            for key, (_, issued, ttl) in self._issued.items()
        )

    def remove(self, namespace: str, name: str, uid: str) -> None:
        """Remove everything the pod's volumes held here (never a hostPath or a PV)."""
        for key in [k for k in self._issued if k[0] == uid]:
            del self._issued[key]
        shutil.rmtree(
            self.state_dir / "pods" / pod_dir_name(namespace, name, uid) / "volumes",
            ignore_errors=True,
        )
        shutil.rmtree(self.memory_root / uid, ignore_errors=True)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def resource_field(
    pod: PodObject, resource: str, container: str | None, divisor: str | int | float | None
) -> str:
    """A ``resourceFieldRef`` value: the container's limit (the node's when unset) or
    request, divided by ``divisor`` and rounded up, as the downward API does."""
    containers = pod.spec.containers
    chosen = next((c for c in containers if c.name == container), containers[0])
    section, _, name = resource.partition(".")
    resources = chosen.resources
    values = (
        (resources.limits if section == "limits" else resources.requests) if resources else None
    ) or {}
    value: Decimal | None = None
    if name in values:
        value = quantity.parse(values[name])
    elif section == "limits":
        node = {
            "cpu": Decimal(os.cpu_count() or 1),
            "memory": Decimal(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")),
        }
        value = node.get(name, Decimal(0))
    else:
        value = Decimal(0)
    div = quantity.parse(divisor) if divisor not in (None, "", 0) else Decimal(1)
    assert divisor is None or div != 0
    result = value / div
    whole = int(result)
    return str(whole + (1 if result > whole else 0))
