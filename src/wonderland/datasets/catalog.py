"""What a dataset's catalogue entry records: a content digest, the size, the files and the
schema (column names and types) of its CSV and Parquet files.

The files are copied by the kernel and hashed from the copy (in the page cache), on every
core at once. The digest is ``sha256:`` of the sorted lines ``<relative path> <size>
<sha256 of the file>``, so it names the content and the layout, not the times or the
machine.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Column", "Contents", "FileSchema", "copy_and_digest", "read_schema"]

# Schemas of this many tabular files at most (annotations are small); sampled rows per CSV.
MAX_SCHEMA_FILES = 20
_SAMPLE_ROWS = 1000
_TABULAR = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class FileSchema:
    """The columns of one tabular file (``format`` is ``csv`` or ``parquet``); ``error``
    says why they could not be read."""

    path: str
    format: str
    columns: tuple[Column, ...] = ()
    rows: int | None = None
    error: str = ""


@dataclass
class Contents:
    """What was copied: the digest, bytes and files, and the schemas found."""

    digest: str = ""
    size: int = 0
    files: int = 0
    schemas: list[FileSchema] = field(default_factory=list)


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, file) of every regular file under ``root``, sorted."""
    found: list[tuple[str, Path]] = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in names:
            path = Path(folder) / name
            if path.is_file():
                found.append((path.relative_to(root).as_posix(), path))
    yield from sorted(found)


def copy_and_digest(source: Path, target: Path) -> Contents:
    """Copy ``source`` (a file or a folder) into the folder ``target`` and hash it.
    A single file keeps its name inside ``target``."""
    contents = Contents()
    lines: list[str] = []
    if source.is_file():
        entries: list[tuple[str, Path]] = [(source.name, source)]
    else:
        entries = list(_walk(source))
    target.mkdir(parents=True, exist_ok=True)

    def one(entry: tuple[str, Path]) -> tuple[int, str]:
        rel, path = entry
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        # the kernel copies (copy_file_range/sendfile); the hash reads the page cache
        shutil.copyfile(path, out)
        shutil.copymode(path, out)
        with out.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256")
        return out.stat().st_size, digest.hexdigest()

    # hashlib releases the GIL on large buffers: files hash on every core at once
    workers = max(1, min(len(entries), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, entries))
    for (rel, _), (size, hexdigest) in zip(entries, results, strict=True):
        lines.append(f"{rel} {size} {hexdigest}")
        contents.size += size
        contents.files += 1
    contents.digest = "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()
    tabular = [(rel, target / rel) for rel, _ in entries if Path(rel).suffix.lower() in _TABULAR]
    contents.schemas = [read_schema(rel, path) for rel, path in tabular[:MAX_SCHEMA_FILES]]
    return contents


def read_schema(rel: str, path: Path) -> FileSchema:
    """The columns of a CSV (types inferred from a sample, as pandas names them) or
    Parquet file (its stored schema; needs pyarrow)."""
    fmt = _TABULAR[path.suffix.lower()]
    if fmt == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            return FileSchema(rel, fmt, error="install pyarrow to read Parquet schemas")
        try:
            meta = pq.read_metadata(path)
            schema = meta.schema.to_arrow_schema()
        except Exception as exc:  # a corrupt file is reported, not fatal
            return FileSchema(rel, fmt, error=f"not a readable Parquet file: {exc}")
        columns = tuple(Column(f.name, str(f.type)) for f in schema)
        return FileSchema(rel, fmt, columns, rows=meta.num_rows)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, None)
            if not header:
                return FileSchema(rel, fmt, error="empty file: no header row")
            kinds: list[set[str]] = [set() for _ in header]
            for n, row in enumerate(reader):
                if n >= _SAMPLE_ROWS:
                    break
                for i, cell in enumerate(row[: len(header)]):
                    kinds[i].add(_cell_type(cell))
    except UnicodeDecodeError:
        return FileSchema(rel, fmt, error="not UTF-8 text")
    except csv.Error as exc:
        return FileSchema(rel, fmt, error=f"not a readable CSV file: {exc}")
    columns = tuple(Column(name, _column_type(k)) for name, k in zip(header, kinds, strict=True))
    return FileSchema(rel, fmt, columns)


def _cell_type(cell: str) -> str:
    text = cell.strip()
    if not text:
        return "null"
    if text.lower() in ("true", "false"):
        return "bool"
    try:
        int(text)
        return "int64"
    except ValueError:
        pass
    try:
        float(text)
        return "float64"
    except ValueError:
        return "string"


def _column_type(kinds: set[str]) -> str:
    kinds = kinds - {"null"}
    if not kinds:
        return "string"
    if len(kinds) == 1:
        return next(iter(kinds))
    if kinds <= {"int64", "float64"}:
        return "float64"
    return "string"
