"""Container logs as the kubelet keeps them: one file per container instance, CRI format.

The kubelet reads each process's stdout and stderr through pipes and writes every line as
``<RFC3339Nano time> <stdout|stderr> <F|P> <text>`` (``P`` marks a partial line: a line
longer than the chunk read, or text with no newline yet), as containerd does under
``/var/log/pods``. Keeping the time of every line is what ``kubectl logs --timestamps`` and
``--since`` need; keeping the previous instance's file is what ``--previous`` needs.

Files live at ``<state>/pods/<namespace>_<pod>_<uid>/<container>/<restartCount>.log``; a file
over ``max_bytes`` is rotated once (``.1``), so one container holds at most two files.
Followers (``kubectl logs -f``) are woken by the writer, not by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

from wonderland.timefmt import format_time, parse_time

__all__ = [
    "ContainerLog",
    "LogOptions",
    "format_time",
    "parse_time",
    "read_lines",
]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
_CHUNK = 16 * 1024
# After the process exits, what its pipes still hold is read for this long at most (a
# daemonised grandchild may keep them open; the kubelet stops reading then too).
DRAIN_SECONDS = 1.0


class LogOptions:
    """What a reader asks for: kubectl's ``--tail``, ``--timestamps``, ``--since-time``,
    ``--limit-bytes``."""

    def __init__(
        self,
        tail_lines: int | None = None,
        timestamps: bool = False,
        since: datetime | None = None,
        limit_bytes: int | None = None,
    ) -> None:
        self.tail_lines = tail_lines
        self.timestamps = timestamps
        self.since = since
        self.limit_bytes = limit_bytes


def _render(record: bytes, options: LogOptions, at_line_start: bool) -> tuple[bytes, bool]:
    """One CRI record as the user sees it; and whether the next record starts a line."""
    try:
        stamp, _stream, tag, text = record.split(b" ", 3)
    except ValueError:
        return b"", at_line_start
    if options.since is not None:
        when = parse_time(stamp.decode())
        if when is not None and when < options.since:
            return b"", tag == b"F" or (at_line_start and tag != b"P")
    out = b""
    if options.timestamps and at_line_start:
        out = stamp + b" "
    out += text
    if tag == b"F":
        out += b"\n"
    return out, tag == b"F"


def _records(paths: list[Path]) -> list[bytes]:
    out: list[bytes] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        out.extend(line for line in data.split(b"\n") if line)
    return out


def read_lines(paths: list[Path], options: LogOptions) -> bytes:
    """The text of the log files (oldest first), after ``tail_lines``/``since``/``limit``."""
    records = _records(paths)
    if options.tail_lines is not None:
        # Count whole lines: a line is one or more P records ending with an F record.
        kept = 0
        start = len(records)
        for i in range(len(records) - 1, -1, -1):
            if _tag(records[i]) == b"F":
                if kept == options.tail_lines:
                    break
                kept += 1
            start = i
        records = records[start:] if options.tail_lines > 0 else []
    out = bytearray()
    line_start = True
    for record in records:
        text, line_start = _render(record, options, line_start)
        out += text
    if options.limit_bytes is not None:
        del out[options.limit_bytes :]
    return bytes(out)


def _tag(record: bytes) -> bytes:
    parts = record.split(b" ", 3)
    return parts[2] if len(parts) > 2 else b"F"


class ContainerLog:
    """The log of one container instance: written from its pipes, read by any number of
    followers while it runs and by plain reads after."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.closed = False
        self._file: int | None = None
        self._size = 0
        self._changed = asyncio.Event()
        self._pumps: list[asyncio.Task[None]] = []

    # -- writing -----------------------------------------------------------------

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._file).st_size

    def write(self, stream: str, data: bytes, final: bool) -> None:
        """Append ``data`` (no newline in it) as one record; ``final`` ends the line."""
        if self._file is None:
            return
        record = f"{format_time()} {stream} {'F' if final else 'P'} ".encode() + data + b"\n"
        os.write(self._file, record)
        self._size += len(record)
        if self._size > self.max_bytes:
            self._rotate()
        self._changed.set()

    def note(self, text: str) -> None:
        """A line the platform adds (why a process could not start), as stderr."""
        for line in text.splitlines() or [""]:
            self.write("stderr", line.encode(), True)

    def _rotate(self) -> None:
        assert self._file is not None
        os.close(self._file)
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._file = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = 0

    def attach(self, stdout: asyncio.StreamReader, stderr: asyncio.StreamReader | None) -> None:
        """Start copying the process's pipes into the file."""
        loop = asyncio.get_running_loop()
        self._pumps = [loop.create_task(self._pump("stdout", stdout))]
        if stderr is not None:
            self._pumps.append(loop.create_task(self._pump("stderr", stderr)))

    async def _pump(self, stream: str, reader: asyncio.StreamReader) -> None:
        pending = b""
        while True:
            try:
                chunk = await reader.read(_CHUNK)
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                break
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                self.write(stream, line, True)
            if len(pending) >= _CHUNK:
                self.write(stream, pending, False)
                pending = b""
        if pending:
            self.write(stream, pending, True)

    async def close(self) -> None:
        """After the process exits: read what the pipes still hold, then close the file."""
        if self._pumps:
            _, slow = await asyncio.wait(self._pumps, timeout=DRAIN_SECONDS)
            for task in slow:
                task.cancel()
            for task in slow:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._file is not None:
            os.close(self._file)
            self._file = None
        self.closed = True
        self._changed.set()

    # -- reading -----------------------------------------------------------------

    def files(self) -> list[Path]:
        rotated = self.path.with_name(self.path.name + ".1")
        return [p for p in (rotated, self.path) if p.exists()]

    async def follow(self, options: LogOptions) -> AsyncIterator[bytes]:
        """What is there now (after ``options``), then each new piece until the container
        instance has ended."""
        first = read_lines(self.files(), options)
        sent = len(first)
        if first:
            yield first
        offset = self._size_on_disk()
        rotated_at = self._rotation_marker()
        line_start = first.endswith(b"\n") or not first
        limit = options.limit_bytes
        while True:
            if limit is not None and sent >= limit:
                return
            closed = self.closed
            if self._rotation_marker() != rotated_at:
                rotated_at = self._rotation_marker()
                offset = 0
            data = self._read_from(offset)
            if data:
                end = data.rfind(b"\n") + 1
                offset += end
                out = bytearray()
                live = LogOptions(timestamps=options.timestamps)
                for record in data[:end].split(b"\n"):
                    if record:
                        text, line_start = _render(record, live, line_start)
                        out += text
                if limit is not None:
                    del out[limit - sent :]
                if out:
                    sent += len(out)
                    yield bytes(out)
                continue
            if closed:
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 1.0)

    def _size_on_disk(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def _rotation_marker(self) -> int:
        try:
            return self.path.stat().st_ino
        except OSError:
            return 0

    def _read_from(self, offset: int) -> bytes:
        try:
            with self.path.open("rb") as f:
                f.seek(offset)
                return f.read()
        except OSError:
            return b""
