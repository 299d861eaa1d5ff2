"""``wonderland build``: an OCI image of an app folder, written without a container daemon.

The image is the base image's layers plus one layer holding the folder's source files,
with a config shaped by the folder's Dockerfile (the subset that needs no container to
run: ``FROM``, ``WORKDIR``, ``COPY``, ``ENV``, ``EXPOSE``, ``CMD``, ``ENTRYPOINT``,
``USER``, ``LABEL``) or, with no Dockerfile, by its ``Procfile``. ``RUN`` needs a
container runtime and is refused with what to do instead.

The base comes from an OCI image layout on disk (``skopeo copy docker://python:3.12-slim
oci:DIR:3.12-slim`` writes one), since no registry is reached here. The result goes into
an OCI image layout (``index.json``, ``blobs/sha256``; or its tar) under the name
``[REG/]<name>:<first 16 hex of the source digest>``, the name ``wonderland export``
gives the image. Everything is deterministic: the layer's files carry no times or owners
and the config no creation date, so the same source on the same base gives the same
manifest digest, and a rebuild of an unchanged folder only reads it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shlex
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from wonderland.errors import WonderlandError
from wonderland.export.sources import source_digest, source_files

__all__ = [
    "BuildResult",
    "ImageBuildError",
    "ImageRecipe",
    "build_image",
    "parse_dockerfile",
    "read_archive",
    "write_archive",
]

Obj = dict[str, Any]
Progress = Callable[[str], None]

_REF_NAME = "org.opencontainers.image.ref.name"
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
_DEFAULT_BASE = "python:3.12-slim"


class ImageBuildError(WonderlandError):
    """An image cannot be built: the file, the line or field, and what to do."""


@dataclass
class ImageRecipe:
    """What the Dockerfile (or the Procfile) asks of the image."""

    base: str = _DEFAULT_BASE
    workdir: str = "/app"
    copy_to: str = "."  # relative to workdir unless absolute
    env: dict[str, str] = field(default_factory=dict)
    ports: list[str] = field(default_factory=list)
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    user: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


def _command(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", text]


def _pairs(text: str) -> dict[str, str]:
    parts = shlex.split(text)
    if len(parts) >= 2 and "=" not in parts[0]:
        return {parts[0]: " ".join(parts[1:])}  # ENV KEY value (the old form)
    out: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(part)
        out[key] = value
    return out


def parse_dockerfile(text: str, where: str) -> ImageRecipe:
    """The recipe of a Dockerfile that needs no container to build; ImageBuildError names
    the line of anything else."""
    recipe = ImageRecipe(workdir="/")
    joined = re.sub(r"\\\n", " ", text)
    seen_from = False
    for number, raw in enumerate(joined.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word, rest = word.upper(), rest.strip()
        at = f"{where}:{number}: {word}"
        if word == "FROM":
            if seen_from:
                raise ImageBuildError(f"{at}: multi-stage builds need buildah or podman")
            seen_from = True
            recipe.base = rest.split()[0]
        elif word == "WORKDIR":
            recipe.workdir = str(PurePosixPath(recipe.workdir) / rest)
        elif word in ("COPY", "ADD"):
            args = [a for a in shlex.split(rest) if not a.startswith("--")]
            if len(args) != 2 or args[0] not in (".", "./"):
                raise ImageBuildError(
                    f"{at} {rest}: only `COPY . DEST` (the whole folder) is built without a "
                    "container runtime; copy the folder as a whole"
                )
            recipe.copy_to = args[1]
        elif word == "ENV":
            try:
                recipe.env.update(_pairs(rest))
            except ValueError as exc:
                raise ImageBuildError(f"{at}: {exc} is not KEY=VALUE") from None
        elif word == "LABEL":
            try:
                recipe.labels.update(_pairs(rest))
            except ValueError as exc:
                raise ImageBuildError(f"{at}: {exc} is not KEY=VALUE") from None
        elif word == "EXPOSE":
            recipe.ports += [p if "/" in p else f"{p}/tcp" for p in rest.split()]
        elif word == "CMD":
            recipe.cmd = _command(rest)
        elif word == "ENTRYPOINT":
            recipe.entrypoint = _command(rest)
        elif word == "USER":
            recipe.user = rest
        elif word == "RUN":
            raise ImageBuildError(
                f"{at}: RUN needs a container runtime (buildah or podman); put what it "
                "installs in the base image, or dependencies in requirements.txt"
            )
        else:
            raise ImageBuildError(
                f"{at}: not supported without a container runtime (FROM, WORKDIR, COPY . DEST, "
                "ENV, LABEL, EXPOSE, CMD, ENTRYPOINT and USER are)"
            )
    if not seen_from:
        raise ImageBuildError(f"{where}: no FROM line")
    return recipe


def _procfile_recipe(folder: Path) -> ImageRecipe:
    procfile = folder / "Procfile"
    recipe = ImageRecipe(env={"PORT": "8080"}, ports=["8080/tcp"])
    if procfile.is_file():
        for line in procfile.read_text().splitlines():
            if line.startswith("web:"):
                recipe.cmd = ["/bin/sh", "-c", line[4:].strip()]
                return recipe
        raise ImageBuildError(f"{procfile}: no 'web:' line; add one, e.g. 'web: python app.py'")
    for module in ("main.py", "app.py", "server.py"):
        if (folder / module).is_file():
            recipe.cmd = ["python", module]
            return recipe
    raise ImageBuildError(
        f"{folder}: no Dockerfile, Procfile or main.py/app.py/server.py: nothing says how the "
        "image starts; add a Procfile with a 'web:' line"
    )


def recipe_for(folder: Path) -> ImageRecipe:
    """The folder's Dockerfile recipe, else its Procfile's."""
    dockerfile = folder / "Dockerfile"
    if dockerfile.is_file():
        return parse_dockerfile(dockerfile.read_text(), str(dockerfile))
    requirements = folder / "requirements.txt"
    if requirements.is_file() and any(
        ln.split("#", 1)[0].strip() for ln in requirements.read_text().splitlines()
    ):
        raise ImageBuildError(
            f"{requirements}: installing dependencies into an image is not built yet; give "
            "the folder a Dockerfile whose base image holds them"
        )
    return _procfile_recipe(folder)


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


def _base_manifest(base: _Layout, name: str, platform: tuple[str, str]) -> Obj:
    """The manifest of ``name`` (or of the layout's only image) for ``platform``."""
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
    doc = base.read_json(chosen["digest"])
    if _DOCKER_TO_OCI.get(doc.get("mediaType", ""), doc.get("mediaType")) == _INDEX or (
        "manifests" in doc
    ):
        os_, arch = platform
        for m in doc.get("manifests") or []:
            p = m.get("platform") or {}
            if p.get("os") == os_ and p.get("architecture") == arch:
                return base.read_json(m["digest"])
        raise ImageBuildError(f"--base {base.root}: {name} has no {os_}/{arch} image")
    return doc


def _app_layer(folder: Path, dest: str) -> bytes:
    """A gzipped tar of the folder's source under ``dest``: sorted, no times, no owners."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dest_path = PurePosixPath(dest.lstrip("/"))
        parents = [str(p) for p in reversed(dest_path.parents) if str(p) != "."]
        dirs: dict[str, None] = dict.fromkeys([*parents, str(dest_path)])
        files = source_files(folder)
        for path in files:
            rel = PurePosixPath(path.relative_to(folder).as_posix())
            for parent in reversed(rel.parents):
                if str(parent) != ".":
                    dirs.setdefault(str(dest_path / parent), None)
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for path in files:
            info = tarfile.TarInfo(str(dest_path / path.relative_to(folder).as_posix()))
            data = path.read_bytes()
            info.size, info.mtime = len(data), 0
            info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            tar.addfile(info, io.BytesIO(data))
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


def build_image(
    folder: Path,
    name: str,
    out: Path,
    base: Path | None = None,
    registry: str | None = None,
    platform: str = "linux/amd64",
    progress: Progress | None = None,
) -> BuildResult:
    """Build the image of ``folder`` into the OCI image layout ``out``."""
    say = progress or (lambda _line: None)
    if not folder.is_dir():
        raise ImageBuildError(f"{folder}: not a folder (give an app folder or an image name)")
    os_, _, arch = platform.partition("/")
    if not os_ or not arch:
        raise ImageBuildError(f"--platform {platform}: expected OS/ARCH, e.g. linux/amd64")
    digest = source_digest(folder)
    repo = f"{registry.rstrip('/')}/{name}" if registry else name
    ref = f"{repo}:{digest[:16]}"
    layout = _Layout(out)
    existing = layout.find(ref)
    if existing is not None and layout.blob_path(existing["digest"]).is_file():
        manifest = layout.read_json(existing["digest"])
        say(f"{ref}: the source is unchanged ({existing['digest'][:19]})")
        return BuildResult(
            ref,
            existing["digest"],
            digest,
            len(manifest["layers"]),
            sum(int(layer["size"]) for layer in manifest["layers"]),
            cached=True,
        )
    recipe = recipe_for(folder)
    base_layers: list[Obj] = []
    base_config: Obj = {}
    diff_ids: list[str] = []
    if recipe.base != "scratch":
        if base is None:
            raise ImageBuildError(
                f"{folder}: the base image {recipe.base} is needed: give --base DIR, an OCI "
                f"image layout holding it (`skopeo copy docker://{recipe.base} "
                f"oci:DIR:{recipe.base.rsplit(':', 1)[-1]}`)"
            )
        source = _Layout(base)
        if not (base / "index.json").is_file():
            raise ImageBuildError(f"--base {base}: not an OCI image layout (no index.json)")
        say(f"{ref}: base {recipe.base} from {base}")
        manifest = _base_manifest(source, recipe.base, (os_, arch))
        base_config = source.read_json(manifest["config"]["digest"])
        for layer in manifest["layers"]:
            blob = source.blob_path(layer["digest"]).read_bytes()
            layout.put(blob)
            media = _DOCKER_TO_OCI.get(layer["mediaType"], layer["mediaType"])
            base_layers.append({"mediaType": media, "digest": layer["digest"], "size": len(blob)})
        diff_ids = list((base_config.get("rootfs") or {}).get("diff_ids") or [])
    dest = recipe.copy_to
    if not dest.startswith("/"):
        dest = str(PurePosixPath(recipe.workdir) / dest)
    say(f"{ref}: layer of {folder} at {dest}")
    tar = _app_layer(folder, dest)
    compressed = gzip.compress(tar, mtime=0)
    layer_digest = layout.put(compressed)
    diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
    config = _config(base_config, recipe, (os_, arch), diff_ids, digest)
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = layout.put(config_bytes)
    layers = [*base_layers, {"mediaType": _LAYER, "digest": layer_digest, "size": len(compressed)}]
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": _MANIFEST,
        "config": {"mediaType": _CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": layers,
    }
    manifest_bytes = json.dumps(manifest_doc, sort_keys=True, separators=(",", ":")).encode()
    manifest_digest = layout.put(manifest_bytes)
    layout.tag(
        {
            "mediaType": _MANIFEST,
            "digest": manifest_digest,
            "size": len(manifest_bytes),
            "platform": {"os": os_, "architecture": arch},
        },
        ref,
    )
    say(f"{ref}: {manifest_digest}")
    return BuildResult(
        ref,
        manifest_digest,
        digest,
        len(layers),
        sum(int(layer["size"]) for layer in layers),
        cached=False,
    )


def _config(
    base: Obj, recipe: ImageRecipe, platform: tuple[str, str], diff_ids: list[str], digest: str
) -> Obj:
    inherited = dict(base.get("config") or {})
    env: dict[str, str] = {}
    for item in inherited.get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    env.update(recipe.env)
    config: Obj = {
        "Env": [f"{k}={v}" for k, v in env.items()],
        "WorkingDir": recipe.workdir,
        "Labels": {
            **(inherited.get("Labels") or {}),
            **recipe.labels,
            "org.opencontainers.image.revision": f"sha256:{digest}",
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
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            *(base.get("history") or []),
            {"created_by": "wonderland build (the app folder)", "comment": f"sha256:{digest}"},
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
