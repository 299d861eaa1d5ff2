"""Image layers that hold Python packages: ``pip install --target`` into a layer.

A dependency layer is what ``pip install --target`` writes for the requirements, laid out
under :data:`PYTHON_PREFIX` (``site-packages`` on ``PYTHONPATH``, console scripts in
``bin`` on ``PATH``). pip runs here, on the host, so it is told the image's platform and
Python version (``--platform manylinux_2_X_<arch> --python-version 3.Y
--only-binary=:all:``) and fetches the wheels that run there, not the host's.

Layers are cached by the digest of what made them (the requirements, the Python version,
the platform): an unchanged requirements file gives the cached layer without running
pip. The cache is a folder (``$XDG_CACHE_HOME/wonderland/layers`` by default) holding the
compressed layer and a small JSON file per digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wonderland.errors import WonderlandError

__all__ = [
    "PYTHON_PREFIX",
    "DependencyError",
    "Layer",
    "PipOptions",
    "compress_layer",
    "default_cache",
    "packages_layer",
    "requirement_lines",
    "tar_files",
]

Progress = Callable[[str], None]

# Where the packages go in the image: site-packages on PYTHONPATH, scripts on PATH.
PYTHON_PREFIX = "/opt/python"
_SITE = "site-packages"
_ENV_PYTHON = "#!/usr/bin/env python3"
# glibc of Debian bookworm (python:3.12-slim) down to manylinux2014's.
_GLIBC_MINORS = range(36, 16, -1)
_ARCHES = {"amd64": "x86_64", "arm64": "aarch64", "ppc64le": "ppc64le", "s390x": "s390x"}


class DependencyError(WonderlandError):
    """The dependencies cannot be installed into a layer: what pip said and what to do."""


@dataclass(frozen=True)
class Layer:
    """A compressed layer: its blob and the digest of the uncompressed tar."""

    blob: bytes
    diff_id: str
    created_by: str
    cached: bool = False

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.blob).hexdigest()


@dataclass(frozen=True)
class PipOptions:
    """Where pip finds packages (``--find-links``, ``--no-index``) and the layer cache."""

    find_links: tuple[str, ...] = ()
    no_index: bool = False
    cache: Path | None = None


def default_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "wonderland" / "layers"


def requirement_lines(text: str) -> list[str]:
    """The requirements of a requirements file: comments and blank lines left out."""
    out = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def tar_files(entries: Iterable[tuple[str, bytes, int]]) -> bytes:
    """A tar of ``(path, content, mode)`` with the folders they need: sorted, no times, no
    owners, so the same files give the same bytes."""
    files = sorted(entries)
    dirs: dict[str, None] = {}
    for name, _, _ in files:
        for parent in reversed(PurePosixPath(name).parents):
            if str(parent) != ".":
                dirs.setdefault(str(parent), None)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(dirs):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name, data, mode in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, mode
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def compress_layer(tar: bytes, created_by: str) -> Layer:
    """A layer of the uncompressed ``tar``: gzipped reproducibly (no mtime), its diff id the
    digest of the tar itself."""
    return Layer(
        gzip.compress(tar, compresslevel=6, mtime=0),
        "sha256:" + hashlib.sha256(tar).hexdigest(),
        created_by,
    )


def _pip_platforms(platform: tuple[str, str]) -> list[str]:
    os_, arch = platform
    machine = _ARCHES.get(arch)
    if os_ != "linux" or machine is None:
        raise DependencyError(
            f"--platform {os_}/{arch}: dependencies are installed for linux/"
            f"{', linux/'.join(_ARCHES)} only"
        )
    return [f"manylinux_2_{minor}_{machine}" for minor in _GLIBC_MINORS] + [
        f"manylinux2014_{machine}"
    ]


def _installed_files(target: Path, host_python: str) -> list[tuple[str, bytes, int]]:
    """The files pip wrote under ``target``, placed under :data:`PYTHON_PREFIX`; scripts
    move to ``bin`` with ``python3`` from ``PATH`` instead of this machine's interpreter."""
    prefix = PYTHON_PREFIX.lstrip("/")
    out: list[tuple[str, bytes, int]] = []
    for path in sorted(target.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(target).as_posix()
        data = path.read_bytes()
        mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
        if rel.startswith("bin/"):
            head, sep, rest = data.partition(b"\n")
            if head.startswith(b"#!") and b"python" in head:
                data = _ENV_PYTHON.encode() + sep + rest
            data = data.replace(host_python.encode(), b"/usr/bin/env python3")
            out.append((f"{prefix}/{rel}", data, mode))
        else:
            out.append((f"{prefix}/{_SITE}/{rel}", data, mode))
    return out


def packages_layer(
    requirements: Sequence[str],
    *,
    python_version: str,
    platform: tuple[str, str],
    pip: PipOptions,
    what: str,
    no_deps: bool = False,
    key_extra: str = "",  # stands for ``requirements`` in the cache key when given
    progress: Progress | None = None,
) -> Layer:
    """The layer ``pip install --target`` makes of ``requirements`` for the image's
    Python and platform, from the cache when the same requirements made one before."""
    say = progress or (lambda _line: None)
    key_doc = {
        # what is installed: the requirements, or (a wheel's path) the identity given
        "requirements": [key_extra] if key_extra else list(requirements),
        "python": python_version,
        "platform": list(platform),
        "no_deps": no_deps,
        "prefix": PYTHON_PREFIX,
    }
    key = hashlib.sha256(json.dumps(key_doc, sort_keys=True).encode()).hexdigest()
    cache = pip.cache or default_cache()
    blob_path, meta_path = cache / f"{key}.tar.gz", cache / f"{key}.json"
    if blob_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        say(f"{what}: cached layer ({key[:12]}, {blob_path.stat().st_size / 1e6:.1f} MB)")
        return Layer(blob_path.read_bytes(), str(meta["diff_id"]), str(meta["created_by"]), True)
    platforms = _pip_platforms(platform)
    with tempfile.TemporaryDirectory(prefix="wonderland-layer-") as tmp:
        target = Path(tmp) / "target"
        req_file = Path(tmp) / "requirements.txt"
        req_file.write_text("\n".join(requirements) + "\n")
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--target",
            str(target),
            "--no-compile",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            "--only-binary=:all:",
            *(f"--platform={p}" for p in platforms),
            *(f"--find-links={link}" for link in pip.find_links),
            *(["--no-index"] if pip.no_index else []),
            *(["--no-deps"] if no_deps else []),
            "-r",
            str(req_file),
        ]
        say(
            f"{what}: pip install --target ({len(requirements)} requirement(s), Python "
            f"{python_version}, {platform[0]}/{platform[1]})"
        )
        started = time.monotonic()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp
        )
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:
            line = line.rstrip()
            lines.append(line)
            if line.startswith(("Collecting ", "Downloading ", "Processing ", "Installing ")):
                shown = line.strip().split(" (from ")[0]
                say(f"{what}:   {shown} ({time.monotonic() - started:.0f} s)")
        if proc.wait() != 0:
            tail = "\n".join(ln for ln in lines if ln.strip())[-1500:]
            raise DependencyError(
                f"{what}: pip could not install the dependencies for Python {python_version} "
                f"on {platform[0]}/{platform[1]} (only wheels are used: a package that has "
                "no wheel for that platform needs a base image that holds it, or a wheel in "
                f"--find-links DIR):\n{tail}"
            )
        tar = tar_files(_installed_files(target, sys.executable))
    created_by = f"pip install --target {PYTHON_PREFIX} ({what})"
    layer = compress_layer(tar, created_by)
    cache.mkdir(parents=True, exist_ok=True)
    tmp_blob = blob_path.with_suffix(".tmp")
    tmp_blob.write_bytes(layer.blob)
    tmp_blob.replace(blob_path)
    meta_path.write_text(json.dumps({"diff_id": layer.diff_id, "created_by": created_by}))
    say(f"{what}: layer of {len(layer.blob) / 1e6:.1f} MB in {time.monotonic() - started:.1f} s")
    return layer
