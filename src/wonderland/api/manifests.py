"""Reading manifests: multi-document YAML files and directories, with line numbers.

Every object remembers the file and the line of each field, so that a validation error
reads ``app.yaml:14: spec.template.spec.containers[0].ports[0].containerPort: expected
integer``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wonderland.api.admission import Admitter
from wonderland.errors import InvalidError, NotFoundError

__all__ = ["Manifest", "ManifestError", "check_all", "load_paths", "load_text"]

_SUFFIXES = (".yaml", ".yml", ".json")


class ManifestError(InvalidError):
    """One or more manifests are malformed or invalid; the message lists each as file:line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class Manifest:
    """One object read from a file, with the line of every field path."""

    obj: dict[str, Any]
    source: str
    line: int
    lines: dict[str, int] = field(default_factory=dict)
    columns: dict[str, int] = field(default_factory=dict)  # 1-based, where lines has one

    def column_of(self, path: str | None) -> int:
        """The column of ``path`` (or of its nearest parent the file has); 1 for none."""
        while path:
            if path in self.columns:
                return self.columns[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return 1

    # The 1-based position of the YAML document in its file (items of a List share it).
    document: int = 1

    def line_of(self, path: str | None) -> int:
        """The line of ``path``, or of its nearest parent that the file has."""
        while path:
            if path in self.lines:
                return self.lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return self.line

    def where(self, path: str | None = None) -> str:
        return f"{self.source}:{self.line_of(path)}"

    def describe_error(self, exc: InvalidError) -> str:
        return f"{self.where(exc.field)}: {exc}"

    @property
    def display(self) -> str:
        meta = self.obj.get("metadata") or {}
        return f"{self.obj.get('kind')}/{meta.get('name') or meta.get('generateName', '')}"


def _index(
    node: yaml.Node, path: str, out: dict[str, int], cols: dict[str, int] | None = None
) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = str(key.value)
            child = f"{path}.{name}" if path else name
            out[child] = key.start_mark.line + 1
            if cols is not None:
                cols[child] = key.start_mark.column + 1
            _index(value, child, out, cols)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = f"{path}[{i}]"
            out[child] = item.start_mark.line + 1
            if cols is not None:
                cols[child] = item.start_mark.column + 1
            _index(item, child, out, cols)


def load_text(text: str, source: str) -> list[Manifest]:
    """Every object in a (multi-document) YAML or JSON text; raises ManifestError."""
    out: list[Manifest] = []
    try:
        for document, node in enumerate(yaml.compose_all(text, Loader=yaml.SafeLoader), 1):
            if node is None:
                continue
            constructor = yaml.SafeLoader("")
            obj = constructor.construct_document(node)
            line = node.start_mark.line + 1
            if obj is None:
                continue
            if not isinstance(obj, dict):
                raise ManifestError(
                    [
                        f"{source}:{line}: expected a Kubernetes object (a mapping), found {type(obj).__name__}"
                    ]
                )
            lines: dict[str, int] = {}
            columns: dict[str, int] = {}
            _index(node, "", lines, columns)
            if obj.get("kind") == "List" and isinstance(obj.get("items"), list):
                for i, item in enumerate(obj["items"]):
                    prefix = f"items[{i}]"
                    sub = {
                        k[len(prefix) + 1 :]: v
                        for k, v in lines.items()
                        if k.startswith(prefix + ".")
                    }
                    sub_cols = {
                        k[len(prefix) + 1 :]: v
                        for k, v in columns.items()
                        if k.startswith(prefix + ".")
                    }
                    out.append(
                        Manifest(
                            item, source, lines.get(prefix, line), sub, sub_cols, document=document
                        )
                    )
                continue
            out.append(Manifest(obj, source, line, lines, columns, document=document))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        detail = f"{context}, {problem}" if context else problem
        raise ManifestError([f"{where}: malformed YAML: {detail}"]) from None
    return out


def _files(path: Path, recursive: bool) -> Iterable[Path]:
    if path.is_dir():
        pattern = "**/*" if recursive else "*"
        yield from sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix in _SUFFIXES)
    elif path.exists():
        yield path
    else:
        raise NotFoundError(f'the path "{path}" does not exist')


def load_paths(paths: Sequence[str], recursive: bool = False) -> list[Manifest]:
    """Every object in the files and directories given (``-`` reads standard input)."""
    out: list[Manifest] = []
    problems: list[str] = []
    for raw in paths:
        if raw == "-":
            sources: list[tuple[str, str]] = [("<stdin>", sys.stdin.read())]
        else:
            sources = [
                (str(p), p.read_text(encoding="utf-8")) for p in _files(Path(raw), recursive)
            ]
        for name, text in sources:
            try:
                out.extend(load_text(text, name))
            except ManifestError as exc:
                problems.extend(exc.problems)
    if problems:
        raise ManifestError(problems)
    return out


def check_all(manifests: Sequence[Manifest], admission: Admitter) -> None:
    """Validate every manifest with ``admission`` (schema and its checks; for the set a
    platform has, :func:`wonderland.platform.default_admission`); raise one ManifestError."""
    problems = []
    for manifest in manifests:
        try:
            admission.admit(manifest.obj, None)
        except InvalidError as exc:
            problems.append(manifest.describe_error(exc))
    if problems:
        raise ManifestError(problems)
