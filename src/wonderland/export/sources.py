"""The digest of an app's source folder: the same files give the same digest.

An exported image is named ``REG/<name>:<digest>``, so an unchanged folder keeps its image
name and a changed one gets a new one. Only what would go into the image counts: caches,
virtualenvs, version-control folders and what ``.dockerignore`` lists do not.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from wonderland.errors import NotFoundError
from wonderland.export.tree import LocalImage
from wonderland.runtime.images import ImageResolver, image_base_name

__all__ = [
    "SKIPPED_NAMES",
    "dockerignore",
    "find_function",
    "function_images",
    "local_images",
    "source_digest",
    "source_files",
]

# Folders and files that never go into an image (and that change without the source).
SKIPPED_NAMES = frozenset(
    {
        ".git",
        ".hg",
        ".venv",
        "venv",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".func",  # a function's local build
    }
)
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def _pattern(text: str) -> re.Pattern[str]:
    """A ``.dockerignore`` pattern as Docker reads it (Go's filepath.Match plus ``**``)."""
    text = posixpath.normpath(text.strip().lstrip("/")) if text.strip("/ ") else ""
    out, i = "", 0
    while i < len(text):
        c = text[i]
        if text.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif text.startswith("**", i):
            out, i = out + ".*", i + 2
        elif c == "*":
            out, i = out + "[^/]*", i + 1
        elif c == "?":
            out, i = out + "[^/]", i + 1
        elif c == "[":
            end = text.find("]", i + 1)
            if end == -1:
                out, i = out + re.escape(c), i + 1
            else:
                body = text[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("^"):
                    body = "!" + body[1:]
                out, i = (
                    out + "[" + ("^" + body[1:] if body.startswith("!") else body) + "]",
                    end + 1,
                )
        elif c == "\\" and i + 1 < len(text):
            out, i = out + re.escape(text[i + 1]), i + 2
        else:
            out, i = out + re.escape(c), i + 1
    return re.compile(out)


def dockerignore(folder: Path) -> list[tuple[re.Pattern[str], bool]]:
    """The folder's ``.dockerignore`` rules: (pattern, is an exception ``!``), in order."""
    path = folder / ".dockerignore"
    if not path.is_file():
        return []
    rules: list[tuple[re.Pattern[str], bool]] = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        body = line[1:].strip() if negated else line
        if body:
            rules.append((_pattern(body), negated))
    return rules


def _ignored(rel: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    """Whether ``rel`` (or a folder above it) is ignored; the last rule that matches wins."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern, negated in rules:
        if any(pattern.fullmatch(c) for c in candidates):
            ignored = not negated
    return ignored


def source_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that make up its source, sorted by relative path: caches and
    virtualenvs are left out, and what the folder's ``.dockerignore`` lists."""
    rules = dockerignore(folder)
    out: list[Path] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part in SKIPPED_NAMES for part in rel.parts):
            continue
        if not path.is_file() or path.name.endswith(_SKIPPED_SUFFIXES):
            continue
        if rules and _ignored(rel.as_posix(), rules):
            continue
        out.append(path)
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def source_digest(folder: Path) -> str:
    """The sha256 (hex) of every source file's relative path and content."""
    digest = hashlib.sha256()
    for path in source_files(folder):
        rel = path.relative_to(folder).as_posix().encode()
        body = path.read_bytes()
        digest.update(len(rel).to_bytes(8, "big") + rel)
        digest.update(len(body).to_bytes(8, "big") + body)
    return digest.hexdigest()


def local_images(
    images: Iterable[str], search_dirs: Sequence[Path], root: Path | None = None
) -> dict[str, LocalImage]:
    """The ``images`` that ``wonderland.yaml`` maps to a folder on this machine, with the
    folder's source digest; an image no project file names is a registry's, and left out."""
    resolver = ImageResolver(Path("."), search_dirs)
    base = (root or Path.cwd()).resolve()
    out: dict[str, LocalImage] = {}
    for image in dict.fromkeys(images):
        try:
            folder = resolver.resolve(image)
        except NotFoundError:
            continue
        try:
            shown = str(folder.relative_to(base))
        except ValueError:
            shown = str(folder)
        environment = (folder / "pyvenv.cfg").is_file() and (folder / "bin" / "python").exists()
        out[image] = LocalImage(
            image=image,
            name=image_base_name(image).rsplit("/", 1)[-1],
            context=shown,
            digest=None if environment else source_digest(folder),
        )
    return out


FUNCTION_SOURCE = "function.knative.dev/source"  # the folder ``func deploy`` deployed from


def function_images(objects: Iterable[Mapping[str, Any]]) -> dict[str, LocalImage]:
    """The images of the Knative Services ``func deploy`` made here: the function's folder
    (its ``function.knative.dev/source`` annotation), named as the function."""
    out: dict[str, LocalImage] = {}
    for obj in objects:
        if obj.get("kind") != "Service" or not str(obj.get("apiVersion", "")).startswith(
            "serving.knative.dev/"
        ):
            continue
        meta = obj.get("metadata") or {}
        folder = Path(str((meta.get("annotations") or {}).get(FUNCTION_SOURCE) or ""))
        if not folder.parts or not (folder / "func.yaml").is_file():
            continue
        containers = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in containers.get("containers") or []:
            if isinstance(container, dict) and isinstance(container.get("image"), str):
                out[container["image"]] = LocalImage(
                    image=container["image"],
                    name=str(meta.get("name")),
                    context=str(folder),
                    digest=source_digest(folder),
                    function=True,
                )
    return out


def find_function(name: str, search_dirs: Sequence[Path]) -> Path:
    """The folder of the function ``name`` (its ``func.yaml``) under ``search_dirs``."""
    from wonderland.functions.funcyaml import load_config

    seen: list[str] = []
    for top in search_dirs:
        for path in sorted(top.rglob("func.yaml")):
            if any(part in SKIPPED_NAMES for part in path.relative_to(top).parts):
                continue
            config = load_config(path.parent)
            seen.append(config.name)
            if config.name == name:
                return path.parent
    where = ", ".join(str(d) for d in search_dirs)
    known = f" (found: {', '.join(sorted(set(seen)))})" if seen else ""
    raise NotFoundError(f"func {name}: no func.yaml named {name} under {where}{known}")
