"""``wonderland build``: an OCI image of an app folder, written without a container daemon.

The image is the base image's layers plus one layer holding the folder's source files,
with a config shaped by the folder's Dockerfile (the subset that needs no container to
run: ``FROM``, ``WORKDIR``, ``COPY`` of the folder or of single files, ``ENV``,
``EXPOSE``, ``CMD``, ``ENTRYPOINT``, ``USER``, ``LABEL``) or, with no Dockerfile, by its
``Procfile``. ``RUN pip install`` becomes a dependency layer (pip runs here, for the
image's platform); any other ``RUN`` needs a container runtime and is refused with what
to do instead.

The base comes from an OCI image layout on disk (``skopeo copy docker://python:3.12-slim
oci:DIR:3.12-slim`` writes one), since no registry is reached here. The result goes into
an OCI image layout (``index.json``, ``blobs/sha256``; or its tar) under the name
``[REG/]<name>:<first 16 hex of the source digest>``, the name ``wonderland export``
gives the image. Everything is deterministic: the layer's files carry no times or owners
and the config no creation date, so the same source on the same base gives the same
manifest digest, and a rebuild of an unchanged folder only reads it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from wonderland import __version__
from wonderland.export.dockerfile import (
    DEFAULT_BASE,
    ImageBuildError,
    ImageRecipe,
    parse_dockerfile,
    recipe_for,
)
from wonderland.export.layers import (
    PYTHON_PREFIX,
    Layer,
    PipOptions,
    compress_layer,
    packages_layer,
    requirement_lines,
    tar_files,
)
from wonderland.export.model_server import (
    FORMAT_EXTRAS,
    MODEL_SERVER_GRPC_PORT,
    MODEL_SERVER_HTTP_PORT,
    MODEL_SERVER_NAME,
    model_server_ref,
)
from wonderland.export.sources import source_digest, source_files

__all__ = [
    "BuildResult",
    "ImageBuildError",
    "ImageRecipe",
    "build_function",
    "build_image",
    "build_model_server",
    "parse_dockerfile",
    "read_archive",
    "write_archive",
]

Obj = dict[str, Any]
Progress = Callable[[str], None]

_REF_NAME = "org.opencontainers.image.ref.name"
_REVISION = "org.opencontainers.image.revision"
_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_INDEX = "application/vnd.oci.image.index.v1+json"
_CONFIG = "application/vnd.oci.image.config.v1+json"
_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
_DOCKER_TO_OCI = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": _LAYER,
    "application/vnd.docker.distribution.manifest.v2+json": _MANIFEST,
    "application/vnd.docker.distribution.manifest.list.v2+json": _INDEX,
    "application/vnd.docker.container.image.v1+json": _CONFIG,
}


# -- the OCI image layout ---------------------------------------------------------------


class _Layout:
    """An OCI image layout folder: content-addressed blobs and an index of named images."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def blob_path(self, digest: str) -> Path:
        algo, _, hexd = digest.partition(":")
        return self.root / "blobs" / algo / hexd

    def read_json(self, digest: str) -> Obj:
        data: Obj = json.loads(self.blob_path(digest).read_bytes())
        return data

    def index(self) -> Obj:
        path = self.root / "index.json"
        if not path.is_file():
            return {"schemaVersion": 2, "mediaType": _INDEX, "manifests": []}
        data: Obj = json.loads(path.read_text())
        return data

    def put(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return digest

    def tag(self, descriptor: Obj, ref: str) -> None:
        index = self.index()
        kept = [m for m in index["manifests"] if (m.get("annotations") or {}).get(_REF_NAME) != ref]
        kept.append({**descriptor, "annotations": {_REF_NAME: ref}})
        index["manifests"] = kept
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}\n')
        (self.root / "index.json").write_text(json.dumps(index, indent=2) + "\n")

    def find(self, ref: str) -> Obj | None:
        for m in self.index()["manifests"]:
            if (m.get("annotations") or {}).get(_REF_NAME) == ref:
                found: Obj = m
                return found
        return None


def _base_manifest(base: _Layout, name: str, platform: tuple[str, str]) -> tuple[Obj, str]:
    """The manifest of ``name`` (or of the layout's only image) for ``platform``, and the
    name the layout gives the image."""
    entries = base.index().get("manifests") or []
    tag = name.rsplit("/", 1)[-1].partition("@")[0]
    tag = tag.split(":", 1)[1] if ":" in tag else "latest"
    named = [
        m
        for m in entries
        if (m.get("annotations") or {}).get(_REF_NAME) in (name, tag)
        or str((m.get("annotations") or {}).get(_REF_NAME, "")).endswith(f":{tag}")
    ]
    chosen = named[0] if named else (entries[0] if len(entries) == 1 else None)
    if chosen is None:
        names = [str((m.get("annotations") or {}).get(_REF_NAME)) for m in entries]
        raise ImageBuildError(
            f"--base {base.root}: no image named {name} or {tag} in its index.json (it has: "
            f"{', '.join(names) or 'none'})"
        )
    chosen_name = str((chosen.get("annotations") or {}).get(_REF_NAME) or "")
    doc = base.read_json(chosen["digest"])
    if _DOCKER_TO_OCI.get(doc.get("mediaType", ""), doc.get("mediaType")) == _INDEX or (
        "manifests" in doc
    ):
        os_, arch = platform
        for m in doc.get("manifests") or []:
            p = m.get("platform") or {}
            if p.get("os") == os_ and p.get("architecture") == arch:
                return base.read_json(m["digest"]), chosen_name
        raise ImageBuildError(f"--base {base.root}: {name} has no {os_}/{arch} image")
    return doc, chosen_name


def _app_layer(folder: Path, dest: str, files: Sequence[tuple[Path, str]] = ()) -> bytes:
    """A tar of the folder's source under ``dest`` and of single ``files`` (path here,
    path in the image): sorted, no times, no owners."""
    dest_path = PurePosixPath(dest.lstrip("/"))
    found = {
        str(dest_path / path.relative_to(folder).as_posix()): path for path in source_files(folder)
    }
    found.update({to.lstrip("/"): path for path, to in files})
    entries = [
        (name, path.read_bytes(), 0o755 if path.stat().st_mode & 0o111 else 0o644)
        for name, path in found.items()
    ]
    tar = tar_files(entries)
    if entries:
        return tar
    # An empty folder still gives its destination folder.
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as out:
        for name in [
            *(str(p) for p in reversed(dest_path.parents) if str(p) != "."),
            str(dest_path),
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            out.addfile(info)
    return raw.getvalue()


@dataclass(frozen=True)
class BuildResult:
    """One image in the output layout."""

    ref: str
    manifest_digest: str
    source_digest: str
    layers: int
    size: int  # bytes of the compressed layers
    cached: bool


def _platform(platform: str) -> tuple[str, str]:
    os_, _, arch = platform.partition("/")
    if not os_ or not arch:
        raise ImageBuildError(f"--platform {platform}: expected OS/ARCH, e.g. linux/amd64")
    return os_, arch


def _cached(layout: _Layout, ref: str, digest: str, say: Progress) -> BuildResult | None:
    """The image ``ref`` when the layout holds it already, built from the same source."""
    existing = layout.find(ref)
    if existing is None or not layout.blob_path(existing["digest"]).is_file():
        return None
    manifest = layout.read_json(existing["digest"])
    config = layout.read_json(manifest["config"]["digest"])
    labels = (config.get("config") or {}).get("Labels") or {}
    if labels.get(_REVISION) != f"sha256:{digest}":
        return None
    say(f"{ref}: the source is unchanged ({existing['digest'][:19]})")
    return BuildResult(
        ref,
        existing["digest"],
        digest,
        len(manifest["layers"]),
        sum(int(layer["size"]) for layer in manifest["layers"]),
        cached=True,
    )


@dataclass
class _Base:
    layers: list[Obj]
    config: Obj

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])

    def python_version(self, name: str) -> str:
        """The image's ``MAJOR.MINOR`` Python: the official images' ``PYTHON_VERSION``,
        else the tag of the base's name, else 3.12."""
        for item in (self.config.get("config") or {}).get("Env") or []:
            key, _, value = str(item).partition("=")
            found = re.match(r"(\d+\.\d+)", value)
            if key == "PYTHON_VERSION" and found:
                return found.group(1)
        found = re.search(r":(\d+\.\d+)", name)
        return found.group(1) if found else "3.12"


def _load_base(
    layout: _Layout,
    base: Path | None,
    name: str,
    platform: tuple[str, str],
    what: str,
    say: Progress,
) -> _Base:
    """The base image's layers (copied into ``layout``) and config."""
    if name == "scratch":
        return _Base([], {})
    if base is None:
        raise ImageBuildError(
            f"{what}: the base image {name} is needed: give --base DIR, an OCI "
            f"image layout holding it (`skopeo copy docker://{name} "
            f"oci:DIR:{name.rsplit(':', 1)[-1]}`)"
        )
    if not (base / "index.json").is_file():
        raise ImageBuildError(
            f"--base {base}: not an OCI image layout (no index.json); an image in a registry "
            "is named with its registry and tag (REG/NAME:TAG)"
        )
    source = _Layout(base)
    manifest, found = _base_manifest(source, name, platform)
    tag = name.rsplit(":", 1)[-1]
    if found and found not in (name, tag) and not found.endswith(f":{tag}"):
        say(f"{what}: base {name} from {base}: its only image, {found}")
    else:
        say(f"{what}: base {name} from {base}")
    layers: list[Obj] = []
    for layer in manifest["layers"]:
        blob = source.blob_path(layer["digest"]).read_bytes()
        layout.put(blob)
        media = _DOCKER_TO_OCI.get(layer["mediaType"], layer["mediaType"])
        layers.append({"mediaType": media, "digest": layer["digest"], "size": len(blob)})
    return _Base(layers, source.read_json(manifest["config"]["digest"]))


def _write_image(
    layout: _Layout,
    ref: str,
    base: _Base,
    layers: Sequence[Layer],
    config: Obj,
    platform: tuple[str, str],
    digest: str,
    say: Progress,
) -> BuildResult:
    descriptors = list(base.layers)
    for layer in layers:
        descriptors.append(
            {"mediaType": _LAYER, "digest": layout.put(layer.blob), "size": len(layer.blob)}
        )
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = layout.put(config_bytes)
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": _MANIFEST,
        "config": {"mediaType": _CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": descriptors,
    }
    manifest_bytes = json.dumps(manifest_doc, sort_keys=True, separators=(",", ":")).encode()
    manifest_digest = layout.put(manifest_bytes)
    layout.tag(
        {
            "mediaType": _MANIFEST,
            "digest": manifest_digest,
            "size": len(manifest_bytes),
            "platform": {"os": platform[0], "architecture": platform[1]},
        },
        ref,
    )
    say(f"{ref}: {manifest_digest}")
    return BuildResult(
        ref,
        manifest_digest,
        digest,
        len(descriptors),
        sum(int(d["size"]) for d in descriptors),
        cached=False,
    )


def build_image(
    folder: Path,
    name: str,
    out: Path,
    base: Path | None = None,
    registry: str | None = None,
    platform: str = "linux/amd64",
    progress: Progress | None = None,
    pip: PipOptions | None = None,
) -> BuildResult:
    """Build the image of ``folder`` into the OCI image layout ``out``: the base's layers,
    a layer of the folder's ``requirements.txt`` (no Dockerfile), the source's layer."""
    say = progress or (lambda _line: None)
    if not folder.is_dir():
        raise ImageBuildError(f"{folder}: not a folder (give an app folder or an image name)")
    plat = _platform(platform)
    digest = source_digest(folder)
    repo = f"{registry.rstrip('/')}/{name}" if registry else name
    ref = f"{repo}:{digest[:16]}"
    layout = _Layout(out)
    cached = _cached(layout, ref, digest, say)
    if cached is not None:
        return cached
    recipe = recipe_for(folder)
    requirements = folder / "requirements.txt"
    dockerfile = (folder / "Dockerfile").is_file()
    if (
        dockerfile
        and not recipe.pip_run
        and requirements.is_file()
        and requirement_lines(requirements.read_text())
    ):
        say(
            f"{ref}: {requirements} is not installed: the Dockerfile has no `RUN pip "
            "install -r requirements.txt`, so its base image must hold what it names"
        )
    base_image = _load_base(layout, base, recipe.base, plat, str(folder), say)
    layers: list[Layer] = []
    if recipe.requirements:
        layers.append(
            packages_layer(
                recipe.requirements,
                python_version=base_image.python_version(recipe.base),
                platform=plat,
                pip=pip or PipOptions(),
                what=f"{ref} {'RUN pip install' if recipe.pip_run else 'requirements.txt'}",
                progress=say,
            )
        )
    dest = recipe.copy_to
    if not dest.startswith("/"):
        dest = str(PurePosixPath(recipe.workdir) / dest)
    say(f"{ref}: layer of {folder} at {dest}")
    tar = _app_layer(folder, dest, [(folder / src, to) for src, to, _ in recipe.files])
    layers.append(compress_layer(tar, "wonderland build (the app folder)"))
    config = _config(base_image.config, recipe, plat, base_image.diff_ids, layers, digest)
    return _write_image(layout, ref, base_image, layers, config, plat, digest, say)


# -- the model server ---------------------------------------------------------------------


def _package_root() -> Path | None:
    """The source tree of this package (where its pyproject.toml is), when it runs from one."""
    here = Path(__file__).resolve().parents[1]
    root = here.parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "wonderland"' in pyproject.read_text():
        return root
    return None


def _wheel_requirements(wheel: Path, extras: Sequence[str], python: str) -> list[str]:
    """The wheel's ``Requires-Dist`` for ``extras`` on Linux with Python ``python``."""
    import zipfile

    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as zf:
        meta_name = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
        if meta_name is None:
            raise ImageBuildError(f"{wheel}: not a wheel (no .dist-info/METADATA)")
        metadata = zf.read(meta_name).decode()
    env: dict[str, str] = {str(k): str(v) for k, v in default_environment().items()}
    env.update(
        python_version=python,
        python_full_version=f"{python}.0",
        sys_platform="linux",
        platform_system="Linux",
        os_name="posix",
    )
    out: list[str] = []
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.partition(":")[2].strip())
        wanted = req.marker is None or any(
            req.marker.evaluate({**env, "extra": extra}) for extra in ["", *extras]
        )
        if wanted and not req.url:
            req.marker = None
            if req.name != "wonderland":
                out.append(str(req))
            else:  # an extra naming others (all = wonderland[redis,...])
                out += _wheel_requirements(wheel, sorted(req.extras), python)
    return list(dict.fromkeys(out))


def _build_wheel(root: Path, into: Path, say: Progress) -> Path:
    import subprocess
    import sys

    say(f"{MODEL_SERVER_NAME}: pip wheel {root}")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--disable-pip-version-check",
            "-w",
            str(into),
            str(root),
        ],
        capture_output=True,
        text=True,
    )
    wheels = sorted(into.glob("wonderland-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise ImageBuildError(
            f"{root}: the package's wheel could not be built (give --wheel FILE instead):\n"
            f"{(proc.stderr or proc.stdout)[-1500:]}"
        )
    return wheels[0]


@dataclass(frozen=True)
class _Package:
    """This package as it goes into an image: its wheel (or the source tree to build one
    from) and the extras; ``ident`` changes when either does."""

    root: Path | None
    wheel: Path | None
    extras: tuple[str, ...]
    ident: str

    @classmethod
    def find(cls, wheel: Path | None, extras: Sequence[str], what: str) -> _Package:
        unknown = [e for e in extras if e not in FORMAT_EXTRAS.values() and e != "all"]
        if unknown:
            raise ImageBuildError(
                f"--extras {','.join(extras)}: no extra {unknown[0]}; the extras are: "
                + ", ".join(sorted({*FORMAT_EXTRAS.values(), "all"}))
            )
        root = _package_root() if wheel is None else None
        if wheel is None and root is None:
            raise ImageBuildError(
                f"{what}: this wonderland runs from an installed package, not its source "
                f"tree: give --wheel FILE (`pip download --no-deps wonderland=={__version__}`)"
            )
        if wheel is not None and not wheel.is_file():
            raise ImageBuildError(f"--wheel {wheel}: no such file")
        ident = hashlib.sha256()
        if wheel is not None:
            ident.update(hashlib.sha256(wheel.read_bytes()).digest())
        else:
            assert root is not None
            ident.update(source_digest(root / "src" / "wonderland").encode())
            ident.update((root / "pyproject.toml").read_bytes())
        ident.update(",".join(sorted(extras)).encode())
        return cls(root, wheel, tuple(extras), ident.hexdigest())

    def layers(
        self, python: str, plat: tuple[str, str], pip: PipOptions, what: str, say: Progress
    ) -> list[Layer]:
        """A layer of the package's dependencies, then one of the package."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="wonderland-wheel-") as tmp:
            wheel = self.wheel
            if wheel is None:
                assert self.root is not None
                wheel = _build_wheel(self.root, Path(tmp), say)
            deps = packages_layer(
                _wheel_requirements(wheel, self.extras, python),
                python_version=python,
                platform=plat,
                pip=pip,
                what=f"{what} dependencies",
                progress=say,
            )
            package = packages_layer(
                [str(wheel)],
                python_version=python,
                platform=plat,
                pip=pip,
                what=f"{what} package",
                no_deps=True,
                key_extra=self.ident,
                progress=say,
            )
        return [deps, package]


def build_model_server(
    out: Path,
    base: Path | None,
    registry: str | None = None,
    platform: str = "linux/amd64",
    progress: Progress | None = None,
    pip: PipOptions | None = None,
    extras: Sequence[str] = (),
    wheel: Path | None = None,
    base_name: str = DEFAULT_BASE,
) -> BuildResult:
    """The model server as a KServe runtime image: the base, a layer of the package's
    dependencies (with ``extras``), a layer of the package's wheel; entry point
    ``wonderland serve`` with KServe's flags, REST on 8080 and gRPC on 8081, non-root."""
    say = progress or (lambda _line: None)
    plat = _platform(platform)
    package = _Package.find(wheel, extras, "--model-server")
    digest = package.ident
    ref = model_server_ref(registry, extras)
    layout = _Layout(out)
    cached = _cached(layout, ref, digest, say)
    if cached is not None:
        return cached
    base_image = _load_base(layout, base, base_name, plat, MODEL_SERVER_NAME, say)
    python = base_image.python_version(base_name)
    layers = package.layers(python, plat, pip or PipOptions(), MODEL_SERVER_NAME, say)
    recipe = ImageRecipe(
        base=base_name,
        workdir="/tmp",
        env={
            "PYTHONPATH": f"{PYTHON_PREFIX}/site-packages",
            "PYTHONUNBUFFERED": "1",
            "HOME": "/tmp",
        },
        ports=[f"{MODEL_SERVER_HTTP_PORT}/tcp", f"{MODEL_SERVER_GRPC_PORT}/tcp"],
        entrypoint=["wonderland", "serve"],
        cmd=[
            "--model_dir=/mnt/models",
            "--host=0.0.0.0",
            f"--http_port={MODEL_SERVER_HTTP_PORT}",
            f"--grpc_port={MODEL_SERVER_GRPC_PORT}",
        ],
        user="1000",
        labels={
            "org.opencontainers.image.title": "wonderland model server",
            "org.opencontainers.image.version": __version__,
            "dev.wonderland.extras": ",".join(extras),
        },
    )
    config = _config(
        base_image.config, recipe, plat, base_image.diff_ids, layers, digest, prefix_path=True
    )
    return _write_image(layout, ref, base_image, layers, config, plat, digest, say)


FUNCTION_DIR = "/function"


def build_function(
    folder: Path,
    name: str,
    out: Path,
    base: Path | None,
    registry: str | None = None,
    platform: str = "linux/amd64",
    progress: Progress | None = None,
    pip: PipOptions | None = None,
    wheel: Path | None = None,
    base_name: str = DEFAULT_BASE,
) -> BuildResult:
    """A function's image: the base, the package's dependencies and the package (the
    function host), a layer of the function's own requirements, the function's folder at
    ``/function``; it starts ``python -m wonderland.functions.host /function`` on 8080."""
    from wonderland.functions.build import function_requirements

    say = progress or (lambda _line: None)
    plat = _platform(platform)
    package = _Package.find(wheel, (), f"func {name}")
    source = source_digest(folder)
    digest = hashlib.sha256(f"{source}:{package.ident}".encode()).hexdigest()
    repo = f"{registry.rstrip('/')}/{name}" if registry else name
    ref = f"{repo}:{source[:16]}"
    layout = _Layout(out)
    cached = _cached(layout, ref, digest, say)
    if cached is not None:
        return cached
    base_image = _load_base(layout, base, base_name, plat, f"func {name}", say)
    python = base_image.python_version(base_name)
    options = pip or PipOptions()
    layers = package.layers(python, plat, options, f"func {name}", say)
    own = [str(r) for r in function_requirements(folder)]
    if own:
        layers.append(
            packages_layer(
                own,
                python_version=python,
                platform=plat,
                pip=options,
                what=f"func {name} requirements",
                progress=say,
            )
        )
    say(f"{ref}: layer of {folder} at {FUNCTION_DIR}")
    tar = _app_layer(folder, FUNCTION_DIR)
    layers.append(compress_layer(tar, "wonderland build (the function folder)"))
    recipe = ImageRecipe(
        base=base_name,
        workdir=FUNCTION_DIR,
        env={
            "PYTHONPATH": f"{PYTHON_PREFIX}/site-packages",
            "PYTHONUNBUFFERED": "1",
            "LISTEN_ADDRESS": "0.0.0.0:8080",
            "HOME": "/tmp",
        },
        ports=["8080/tcp"],
        entrypoint=["python", "-m", "wonderland.functions.host", FUNCTION_DIR],
        cmd=[],
        user="1000",
        labels={"function.knative.dev/name": name},
    )
    config = _config(
        base_image.config, recipe, plat, base_image.diff_ids, layers, digest, prefix_path=True
    )
    return _write_image(layout, ref, base_image, layers, config, plat, digest, say)


def _config(
    base: Obj,
    recipe: ImageRecipe,
    platform: tuple[str, str],
    diff_ids: list[str],
    layers: Sequence[Layer],
    digest: str,
    prefix_path: bool = False,
) -> Obj:
    inherited = dict(base.get("config") or {})
    env: dict[str, str] = {}
    for item in inherited.get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    env.update(recipe.env)
    if prefix_path or recipe.requirements:
        path = env.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        env["PATH"] = f"{PYTHON_PREFIX}/bin:{path}"
    config: Obj = {
        "Env": [f"{k}={v}" for k, v in env.items()],
        "WorkingDir": recipe.workdir,
        "Labels": {
            **(inherited.get("Labels") or {}),
            **recipe.labels,
            _REVISION: f"sha256:{digest}",
        },
    }
    ports = {**(inherited.get("ExposedPorts") or {}), **{p: {} for p in recipe.ports}}
    if ports:
        config["ExposedPorts"] = ports
    entrypoint = recipe.entrypoint if recipe.entrypoint is not None else inherited.get("Entrypoint")
    if entrypoint:
        config["Entrypoint"] = entrypoint
    # A new ENTRYPOINT drops the base's CMD, as docker build does.
    cmd = (
        recipe.cmd
        if recipe.cmd is not None
        else (None if recipe.entrypoint is not None else inherited.get("Cmd"))
    )
    if cmd:
        config["Cmd"] = cmd
    user = recipe.user if recipe.user is not None else inherited.get("User")
    if user:
        config["User"] = user
    return {
        "architecture": platform[1],
        "os": platform[0],
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [*diff_ids, *(layer.diff_id for layer in layers)]},
        "history": [
            *(base.get("history") or []),
            *({"created_by": layer.created_by, "comment": f"sha256:{digest}"} for layer in layers),
        ],
    }


def read_archive(archive: Path, layout: Path) -> None:
    """Unpack an OCI image layout tar (``oci-archive:``) into the folder ``layout``."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(layout, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ImageBuildError(f"-o {archive}: not an OCI image layout tar ({exc})") from None
    if not (layout / "index.json").is_file():
        raise ImageBuildError(f"-o {archive}: not an OCI image layout tar (no index.json)")


def write_archive(layout: Path, archive: Path) -> None:
    """Pack the folder ``layout`` as a tar (``oci-archive:``, ``podman load``): sorted, no
    times or owners, so the same images give the same tar."""
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(layout.rglob("*")):
            rel = path.relative_to(layout).as_posix()
            info = tarfile.TarInfo(rel)
            info.mtime = 0
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = path.read_bytes()
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    tmp.replace(archive)
