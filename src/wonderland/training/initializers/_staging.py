"""A destination folder that appears whole or not at all.

Files are written into a hidden sibling, ``.<name>.partial-<pid>-<random>``, on the same
file system; on success it is renamed onto the destination (a previous tree there is
renamed aside first and removed after). A failed, stopped or killed initializer leaves
no destination, or the previous one untouched, and the next run removes partial folders
whose process is gone. When the destination is itself a mount point (a volume mounted at
``/workspace/dataset``), nothing can be renamed onto it: the staging folder lives inside
it and its entries are moved in at the end.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from wonderland.training.initializers._config import InitializerError

__all__ = ["StagedFolder"]

# Renaming onto a mount point or across file systems fails with these.
_CANNOT_RENAME = (errno.EBUSY, errno.EXDEV, errno.EPERM, errno.EACCES, errno.EROFS)


class StagedFolder:
    """``with StagedFolder(dest) as staged: write under staged.path; staged.commit()``;
    leaving the block without ``commit`` removes what was written."""

    def __init__(self, dest: Path, *, create_parents: bool = False) -> None:
        self.dest = dest
        self.create_parents = create_parents
        self.path = dest
        self._in_place = False
        self._committed = False
        self._tag = f"{os.getpid()}-{secrets.token_hex(3)}"

    def __enter__(self) -> StagedFolder:
        dest, parent = self.dest, self.dest.parent
        if dest.exists() and not dest.is_dir():
            raise InitializerError(
                f"{dest} exists and is not a folder; remove it or choose another destination"
            )
        if not parent.is_dir():
            if not self.create_parents:
                raise InitializerError(f"{parent} does not exist; create it first")
            parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(parent, f".{dest.name}.partial-")
        _remove_stale(parent, f".{dest.name}.old-")
        self._in_place = dest.is_dir() and (
            os.path.ismount(dest) or not os.access(parent, os.W_OK | os.X_OK)
        )
        if self._in_place:
            _remove_stale(dest, ".partial-")
            self.path = dest / f".partial-{self._tag}"
        else:
            self.path = parent / f".{dest.name}.partial-{self._tag}"
        try:
            # mkdir, not mkdtemp: the tree keeps the umask's permissions (mkdtemp's 0700
            # would hide the files from training processes that run as another user)
            self.path.mkdir()
        except OSError as exc:
            raise InitializerError(
                f"cannot write under {self.path.parent} ({exc.strerror}); the destination's "
                "folder must be writable"
            ) from None
        return self

    def commit(self) -> None:
        """Put the staged tree in place of the destination."""
        with _signals_blocked():
            if self._in_place:
                _move_entries(self.path, self.dest)
            elif not self.dest.exists():
                self.path.rename(self.dest)
            else:
                old = self.dest.parent / f".{self.dest.name}.old-{self._tag}"
                try:
                    self.dest.rename(old)
                except OSError as exc:
                    if exc.errno not in _CANNOT_RENAME:
                        raise
                    # a bind mount on the same file system: ismount cannot tell
                    _move_entries(self.path, self.dest)
                else:
                    self.path.rename(self.dest)
                    shutil.rmtree(old, ignore_errors=True)
            self._committed = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._committed:
            shutil.rmtree(self.path, ignore_errors=True)


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    """SIGTERM/SIGINT wait until the renames are done (the tree is never half swapped)."""
    stop = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _move_entries(staged: Path, dest: Path) -> None:
    """Replace what ``dest`` holds by what ``staged`` holds (``staged`` may be inside it)."""
    for entry in dest.iterdir():
        if entry != staged:
            _remove(entry)
    for entry in staged.iterdir():
        shutil.move(entry, dest / entry.name)
    staged.rmdir()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _remove_stale(folder: Path, prefix: str) -> None:
    """Remove ``<prefix><pid>-...`` entries whose process has ended (a killed run)."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        pid_text = entry.name[len(prefix) :].split("-", 1)[0]
        if pid_text.isdigit() and _alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            _remove(entry)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
