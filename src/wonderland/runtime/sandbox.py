"""A private mount namespace per container, so volumes appear at their ``mountPath``.

A program that opens ``/workspace/model/config.json`` must find the volume mounted at
``/workspace/model`` there, as in a container, without root and without changing the host.
Between fork and exec the child (:func:`enter`):

1. unshares its mount namespace (and, when not root, a user namespace that maps its own
   uid and gid, which gives it the right to mount inside it and nowhere else);
2. makes every mount private, so nothing it mounts reaches the host;
3. when every mount point already exists, bind-mounts each volume onto it (the fast path);
   otherwise builds a new root: a tmpfs with every top-level entry of ``/`` bind-mounted
   into it, directories that lack a mount point replaced by a tmpfs mirror of themselves
   (their entries bound back one by one), the missing directories created there, the
   volumes bound on top, then ``pivot_root`` into it;
4. remounts read-only mounts read-only (``readOnly: true``, configMap/secret volumes).

:func:`support` tells at startup whether this host allows it (``kernel.unprivileged_userns_clone``
or ``user.max_user_namespaces`` may forbid user namespaces); the kubelet then refuses to start
a container that needs a mount, saying what to enable, and runs everything else as before.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import subprocess
import sys
from dataclasses import dataclass, field

__all__ = ["Mount", "MountPlan", "SandboxSupport", "enter", "join", "same_mounts", "support"]

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MNT_DETACH = 2
# statvfs f_flag bits -> mount flags that a bind remount inside a user namespace must keep
_LOCKED = ((1, MS_RDONLY), (2, MS_NOSUID), (4, MS_NODEV), (8, MS_NOEXEC))
_ATIME = ((1024, MS_NOATIME), (2048, MS_NODIRATIME), (4096, MS_RELATIME))
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203}
_OLD_ROOT = ".wonderland-old-root"


@dataclass(frozen=True)
class Mount:
    """Bind ``source`` (a host path) at ``target`` (a path in the container)."""

    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class MountPlan:
    """The mounts of one container; ``scratch`` is an empty host directory the child may
    mount a new root on."""

    mounts: tuple[Mount, ...]
    scratch: str
    cwd: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SandboxSupport:
    """Whether containers can get a private mount namespace here, and why not."""

    available: bool
    user_namespace: bool
    reason: str = ""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


class _Mounter:
    def __init__(self) -> None:
        self.libc = _libc()
        self.libc.mount.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]
        self.libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self.libc.unshare.argtypes = [ctypes.c_int]

    def unshare(self, flags: int) -> None:
        _check(self.libc.unshare(flags), "unshare")

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        _check(
            self.libc.mount(
                source.encode() if source else None,
                target.encode(),
                fstype.encode() if fstype else None,
                flags,
                data.encode() if data else None,
            ),
            f"mount {source or fstype} on {target}",
        )

    def bind(self, source: str, target: str, read_only: bool = False) -> None:
        self.mount(source, target, None, MS_BIND | MS_REC, None)
        if read_only:
            self.read_only(target)

    def read_only(self, target: str) -> None:
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        current = os.statvfs(target).f_flag
        for bit, flag in (*_LOCKED, *_ATIME):
            if current & bit:
                flags |= flag
        self.mount(None, target, None, flags, None)

    def pivot(self, new_root: str) -> None:
        number = _PIVOT_ROOT.get(platform.machine())
        if number is None:
            raise OSError(errno.ENOSYS, f"pivot_root is not known on {platform.machine()}")
        old = os.path.join(new_root, _OLD_ROOT)
        os.mkdir(old)
        os.chdir(new_root)
        _check(
            self.libc.syscall(number, new_root.encode(), old.encode()),
            "pivot_root",
        )
        os.chdir("/")
        _check(self.libc.umount2(f"/{_OLD_ROOT}".encode(), MNT_DETACH), "umount old root")
        os.rmdir(f"/{_OLD_ROOT}")


def same_mounts(pid: int) -> bool:
    """Whether process ``pid`` sees the same mounts as this one."""
    try:
        return os.stat(f"/proc/{pid}/ns/mnt").st_ino == os.stat("/proc/self/ns/mnt").st_ino
    except OSError:
        return True


def join(pid: int) -> None:
    """In a child before exec: enter the mount namespace of process ``pid`` (a container),
    and its user namespace first when not root, as ``nsenter`` does for an exec probe."""
    libc = _libc()
    names = ("mnt",) if os.geteuid() == 0 else ("user", "mnt")
    fds = [os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY) for name in names]
    try:
        for fd in fds:
            _check(libc.setns(fd, 0), "setns")
    finally:
        for fd in fds:
            os.close(fd)


def _user_namespace(uid: int, gid: int) -> None:
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")


def _is_dir(path: str) -> bool:
    return os.path.isdir(path)


def _place(host_path: str, new_path: str, m: _Mounter) -> None:
    """Make ``new_path`` show ``host_path`` (bind, or a symlink for a symlink)."""
    try:
        info = os.lstat(host_path)
    except OSError:
        return
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(host_path), new_path)
    elif stat.S_ISDIR(info.st_mode):
        os.mkdir(new_path)
        m.bind(host_path, new_path)
    else:
        with open(new_path, "w"):
            pass
        try:
            m.bind(host_path, new_path)
        except OSError:
            os.unlink(new_path)


def _submounts(host_dir: str) -> list[str]:
    """Mount points strictly below ``host_dir`` (``/etc/hosts`` in a container), outermost
    first."""
    prefix = host_dir.rstrip("/") + "/"
    found = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split(" ", 5)[4].replace("\\040", " ")
                if point.startswith(prefix):
                    found.append(point)
    except OSError:
        return []
    return sorted(set(found), key=lambda p: p.count("/"))


def _mirror(host_dir: str, new_dir: str, m: _Mounter, root: str) -> None:
    """Make ``new_dir`` (a bind of ``host_dir``) writable without touching the host: an
    overlay with a tmpfs upper layer, the mounts below ``host_dir`` bound back on top;
    where overlayfs is not allowed, a tmpfs with each entry bound back one by one."""
    # upper and work directories on a tmpfs of their own, in the new root's tmpfs (never on
    # the host), detached once the overlay holds them
    scratch = os.path.join(root, f".wonderland-overlay-{abs(hash(host_dir))}")
    try:
        os.mkdir(scratch)
    except OSError:
        scratch = ""
    if scratch:
        try:
            m.mount("tmpfs", scratch, "tmpfs", 0, "mode=755")
            os.mkdir(scratch + "/upper")
            os.mkdir(scratch + "/work")
            m.mount(
                "overlay",
                new_dir,
                "overlay",
                0,
                f"lowerdir={host_dir},upperdir={scratch}/upper,workdir={scratch}/work",
            )
            m.libc.umount2(scratch.encode(), MNT_DETACH)
            os.rmdir(scratch)
            for point in _submounts(host_dir):
                inside = new_dir + point[len(host_dir.rstrip("/")) :]
                if not os.path.lexists(inside):
                    if os.path.isdir(point):
                        os.makedirs(inside, exist_ok=True)
                    else:
                        with open(inside, "w"):
                            pass
                m.bind(point, inside)
            return
        except OSError:
            m.libc.umount2(scratch.encode(), MNT_DETACH)
            if os.path.isdir(scratch):
                os.rmdir(scratch)
    m.mount("tmpfs", new_dir, "tmpfs", 0, "mode=755")
    for name in os.listdir(host_dir):
        _place(os.path.join(host_dir, name), os.path.join(new_dir, name), m)


def _ensure(root: str, target: str, is_dir: bool, m: _Mounter, mirrored: set[str]) -> str:
    """Create ``target`` (a path in the container) under ``root`` without writing to the
    host: a directory on the way that comes from the host is mirrored first. Symlinks on
    the way are followed as the container will see them (``/var/run`` -> ``/run``); returns
    the path in the container that the mount goes to."""
    parts = [p for p in target.split("/") if p]
    host = "/"
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        new_path = root + host.rstrip("/") + "/" + part
        host_next = host.rstrip("/") + "/" + part
        if os.path.lexists(new_path):
            if os.path.islink(new_path):
                link = os.readlink(new_path)
                resolved = os.path.normpath(
                    link if link.startswith("/") else os.path.join(host, link)
                )
                rest = "/".join(parts[i + 1 :])
                return _ensure(root, resolved + ("/" + rest if rest else ""), is_dir, m, mirrored)
            host = host_next
            continue
        parent = root + host.rstrip("/") if host != "/" else root
        if host != "/" and host not in mirrored and os.path.isdir(host):
            _mirror(host, parent, m, root)
            mirrored.add(host)
        if last and not is_dir:
            with open(new_path, "w"):
                pass
        else:
            os.mkdir(new_path)
        host = host_next
    return "/" + "/".join(parts)


def enter(plan: MountPlan) -> None:
    """In the child, between fork and exec: apply ``plan`` (see the module docstring)."""
    m = _Mounter()
    uid, gid = os.getuid(), os.getgid()
    if os.geteuid() == 0:
        m.unshare(CLONE_NEWNS)
    else:
        m.unshare(CLONE_NEWNS | CLONE_NEWUSER)
        _user_namespace(uid, gid)
    m.mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    sources = {mount.target: os.path.isdir(mount.source) for mount in plan.mounts}
    fast = all(
        os.path.isdir(t) == is_dir if os.path.exists(t) else False for t, is_dir in sources.items()
    )
    if fast:
        for mount in sorted(plan.mounts, key=lambda x: x.target.count("/")):
            m.bind(mount.source, mount.target, mount.read_only)
    else:
        root = plan.scratch
        m.mount("tmpfs", root, "tmpfs", 0, "mode=755")
        for name in os.listdir("/"):
            _place("/" + name, os.path.join(root, name), m)
        mirrored: set[str] = set()
        for mount in sorted(plan.mounts, key=lambda x: x.target.count("/")):
            inside = _ensure(root, mount.target, sources[mount.target], m, mirrored)
            m.bind(mount.source, root + inside, mount.read_only)
        m.pivot(root)
    if plan.cwd:
        os.chdir(plan.cwd)


_PROBE = r"""
import os, sys
sys.path[:0] = [%r]
from wonderland.runtime import sandbox
scratch = %r
sandbox.enter(sandbox.MountPlan((sandbox.Mount(scratch, "/wonderland-sandbox-probe/x"),),
                                os.path.join(scratch, "root")))
print("ok")
"""


def support() -> SandboxSupport:
    """Try a sandbox in a throwaway child; say what the host lacks if it fails."""
    import tempfile

    if not sys.platform.startswith("linux"):
        return SandboxSupport(False, False, "mount namespaces need Linux")
    root = os.geteuid() == 0
    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with tempfile.TemporaryDirectory(prefix="wonderland-sandbox-") as scratch:
        os.mkdir(os.path.join(scratch, "root"))
        try:
            result = subprocess.run(
                [sys.executable, "-c", _PROBE % (package, scratch)],
                capture_output=True,
                text=True,
                timeout=20,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return SandboxSupport(False, not root, f"the sandbox probe did not run: {exc}")
    if result.returncode == 0 and "ok" in result.stdout:
        return SandboxSupport(True, not root)
    detail = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
    if root:
        why = (
            f"mount namespaces are not allowed here ({detail}); run the daemon with "
            "CAP_SYS_ADMIN (a privileged container) or on a host that allows unshare(2)"
        )
    else:
        why = (
            f"unprivileged user namespaces are disabled on this host ({detail}); enable them "
            "with `sysctl -w kernel.unprivileged_userns_clone=1` (Debian/Ubuntu) or "
            "`sysctl -w user.max_user_namespaces=15000`, and on Ubuntu 24.04+ "
            "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
        )
    return SandboxSupport(False, not root, why)
