"""The digest of an app's source folder: the same files give the same digest.

An exported image is named ``REG/<name>:<digest>``, so an unchanged folder keeps its image
name and a changed one gets a new one. Only what would go into the image counts: caches,
virtualenvs and version-control folders do not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from wonderland.errors import NotFoundError
from wonderland.export.tree import LocalImage
from wonderland.runtime.images import ImageResolver, image_base_name

__all__ = ["SKIPPED_NAMES", "local_images", "source_digest", "source_files"]

# Folders and files that never go into an image (and that change without the source).
SKIPPED_NAMES = frozenset(
    {".git", ".hg", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
)
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def source_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that make up its source, sorted by relative path."""
    out: list[Path] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part in SKIPPED_NAMES for part in rel.parts):
            continue
        if path.is_file() and not path.name.endswith(_SKIPPED_SUFFIXES):
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
