"""``func create``: write a new function folder from the packaged templates.

The layout is that of Knative's current Python templates (``function/__init__.py``,
``function/func.py`` with ``new()``, ``pyproject.toml``, ``tests/test_func.py``) plus the
``func.yaml`` that ``func create`` writes.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from wonderland.errors import ConflictError, InvalidError
from wonderland.functions.funcyaml import FUNC_YAML, LATEST_SPEC_VERSION, NAME_RE

__all__ = ["LANGUAGES", "TEMPLATES", "CreatedFunction", "create_function"]

LANGUAGES = ("python",)
TEMPLATES = ("http", "cloudevents")
# Files that may already be in a folder without making it "not empty" (as func allows).
_IGNORABLE = {".git", ".gitignore", ".idea", ".vscode", ".DS_Store", "README.md", "LICENSE"}
_RENAMES = {"gitignore": ".gitignore"}


@dataclass(frozen=True)
class CreatedFunction:
    """What ``create_function`` wrote."""

    root: Path
    name: str
    template: str
    files: tuple[str, ...]


def _template_root(language: str, template: str) -> Traversable:
    return resources.files("wonderland.functions").joinpath("templates", language, template)


def _walk(node: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    out: list[tuple[str, Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__":
            continue
        rel = f"{prefix}{child.name}"
        if child.is_dir():
            out.extend(_walk(child, rel + "/"))
        elif child.name.endswith(".tmpl"):
            out.append((rel[: -len(".tmpl")], child))
    return out


def func_yaml_text(name: str, template: str, created: datetime.datetime) -> str:
    """The ``func.yaml`` that ``func create`` writes for a new Python function."""
    lines = [
        f"specVersion: {LATEST_SPEC_VERSION}",
        f"name: {name}",
        "runtime: python",
        f"created: {created.isoformat()}",
    ]
    if template == "cloudevents":
        lines.append("invoke: cloudevent")
    return "\n".join(lines) + "\n"


def create_function(
    path: Path, *, language: str = "python", template: str = "http", name: str | None = None
) -> CreatedFunction:
    """Write a new function into ``path`` (created if missing; must be empty otherwise)."""
    if language not in LANGUAGES:
        raise InvalidError(
            f"language {language!r} is not available; wonderland creates {', '.join(LANGUAGES)} "
            "functions (use -l python)"
        )
    if template not in TEMPLATES:
        raise InvalidError(
            f"template {template!r} does not exist for {language}; choose one of "
            f"{', '.join(TEMPLATES)} (-t http or -t cloudevents)"
        )
    root = path.resolve()
    fname = name or root.name
    if not NAME_RE.match(fname) or len(fname) > 63:
        raise InvalidError(
            f"function name {fname!r} (from {'--name' if name else 'the folder name'}) is not "
            "valid: use at most 63 lower-case letters, digits and '-', starting and ending "
            "with a letter or digit"
        )
    if root.exists():
        if not root.is_dir():
            raise ConflictError(f"{root} exists and is not a folder; pick another path")
        if (root / FUNC_YAML).exists():
            raise ConflictError(
                f"{root} already holds a function ({FUNC_YAML}); pick another path or edit it"
            )
        clutter = sorted(p.name for p in root.iterdir() if p.name not in _IGNORABLE)
        if clutter:
            raise ConflictError(
                f"{root} is not empty ({', '.join(clutter[:5])}); create the function in a new "
                "or empty folder"
            )
    written: list[str] = []
    for rel, source in _walk(_template_root(language, template)):
        parts = rel.split("/")
        parts[-1] = _RENAMES.get(parts[-1], parts[-1])
        target = root.joinpath(*parts)
        if target.exists():  # README.md / .gitignore the user already has
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        written.append("/".join(parts))
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    (root / FUNC_YAML).write_text(func_yaml_text(fname, template, created), encoding="utf-8")
    written.append(FUNC_YAML)
    return CreatedFunction(root=root, name=fname, template=template, files=tuple(sorted(written)))
