"""Saved example requests per InferenceService (the "try it" box's examples).

:class:`ExampleStore` is the seam; :class:`FileExamples` keeps one JSON file per model in
the daemon's state directory (``<state>/console/examples/<namespace>/<name>.json``),
written atomically, so examples survive a restart and a re-created model of the same name
finds its own again. Everything a client can make it hold is bounded: at most
:data:`MAX_EXAMPLES` examples per model, :data:`MAX_MODELS` models with examples, names of
1-64 characters, bodies of the console's form size. A full store refuses (409) rather
than dropping what someone saved.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson

from wonderland.errors import ConflictError, InvalidError, NotFoundError

__all__ = [
    "EXAMPLES_DIR",
    "MAX_EXAMPLES",
    "MAX_MODELS",
    "Example",
    "ExampleStore",
    "FileExamples",
    "check_name",
]

EXAMPLES_DIR = Path("console") / "examples"  # under the state directory
MAX_EXAMPLES = 20
MAX_MODELS = 100
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
# the store's own names (DNS labels and subdomains): what may become a folder or file name
_OBJECT = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


@dataclass(frozen=True)
class Example:
    """One saved request: its name, the V2 request (JSON text) and when it was saved."""

    name: str
    body: str
    saved: str  # ISO time, UTC


class ExampleStore(Protocol):
    """Where a model's saved example requests are kept."""

    def examples(self, namespace: str, model: str) -> list[Example]:
        """The model's examples, in the order they were first saved."""
        ...

    def save(self, namespace: str, model: str, example: Example) -> list[Example]:
        """Add ``example`` (replacing one of the same name); the examples after it.
        ConflictError when the model (or the store) is full."""
        ...

    def delete(self, namespace: str, model: str, name: str) -> list[Example]:
        """Remove the example ``name``; the examples after it. NotFoundError without it."""
        ...


def check_name(name: str) -> str:
    """An example's name, or InvalidError saying what a name may be."""
    if not _NAME.fullmatch(name):
        raise InvalidError(
            "name",
            f"example name {name[:80]!r} must be 1 to 64 letters, digits, spaces, '.', '_' "
            "or '-', starting with a letter or digit",
        )
    return name


class FileExamples:
    """:class:`ExampleStore` as JSON files under ``root`` (see the module docstring)."""

    def __init__(
        self, root: Path, max_examples: int = MAX_EXAMPLES, max_models: int = MAX_MODELS
    ) -> None:
        self.root = root
        self.max_examples = max_examples
        self.max_models = max_models

    def _path(self, namespace: str, model: str) -> Path:
        for part in (namespace, model):
            if not _OBJECT.fullmatch(part):  # the handlers pass names of stored objects
                raise InvalidError("name", f"{part!r} is not an object name")
        return self.root / namespace / f"{model}.json"

    def examples(self, namespace: str, model: str) -> list[Example]:
        path = self._path(namespace, model)
        try:
            doc = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, orjson.JSONDecodeError):
            return []  # unreadable: shown as none; the next save writes a good file
        return [
            Example(str(e.get("name", "")), str(e.get("body", "")), str(e.get("saved", "")))
            for e in doc.get("examples", [])
            if isinstance(e, dict)
        ][: self.max_examples]

    def _write(self, path: Path, examples: list[Example]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        doc = {"examples": [{"name": e.name, "body": e.body, "saved": e.saved} for e in examples]}
        tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)

    def _models(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.exists() else 0

    def save(self, namespace: str, model: str, example: Example) -> list[Example]:
        check_name(example.name)
        path = self._path(namespace, model)
        examples = self.examples(namespace, model)
        if not examples and not path.exists() and self._models() >= self.max_models:
            raise ConflictError(
                f"examples are kept for at most {self.max_models} models; delete the examples of "
                f"a model you no longer use (under {self.root})"
            )
        names = [e.name for e in examples]
        if example.name in names:
            examples[names.index(example.name)] = example
        elif len(examples) >= self.max_examples:
            raise ConflictError(
                f"{namespace}/{model} has {self.max_examples} saved examples, the most it keeps; "
                "delete one first"
            )
        else:
            examples.append(example)
        self._write(path, examples)
        return examples

    def delete(self, namespace: str, model: str, name: str) -> list[Example]:
        path = self._path(namespace, model)
        examples = self.examples(namespace, model)
        kept = [e for e in examples if e.name != name]
        if len(kept) == len(examples):
            raise NotFoundError(f"{namespace}/{model} has no saved example {name!r}")
        if kept:
            self._write(path, kept)
        else:
            path.unlink(missing_ok=True)
        return kept


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
