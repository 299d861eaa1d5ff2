"""What code a workload ran: the content digest of its working directory and the git commit
of the repository that holds it, for a run's ``wonderland.code.digest`` and
``mlflow.source.git.commit`` tags.

The digest is ``sha256:<hex>`` over every file under the folder in sorted order of relative
path: the path, a NUL, the size, then the bytes (a symbolic link: its target instead of the
bytes; links to folders are not followed). Skipped: the folders ``.git``, ``__pycache__``,
``node_modules`` and any whose name starts with ``.venv``, and files over
:data:`MAX_FILE_BYTES`. A folder with more than :data:`MAX_FILES` files, or more than
:data:`MAX_TOTAL_BYTES` to read, gets no digest (a partial one would name content it did
not see); neither does a folder that does not exist.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

__all__ = ["MAX_FILES", "MAX_FILE_BYTES", "MAX_TOTAL_BYTES", "code_digest", "git_commit"]

MAX_FILES = 2000
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_TOTAL_BYTES = 256 * 1024 * 1024
SKIPPED_DIRS = frozenset({".git", "__pycache__", "node_modules"})
GIT_TIMEOUT = 5.0


def _skipped_dir(name: str) -> bool:
    return name in SKIPPED_DIRS or name.startswith(".venv")


def _files(folder: Path) -> list[tuple[str, Path, os.stat_result]] | None:
    """(relative path, path, lstat) of the files to digest, or None past the limits."""
    out: list[tuple[str, Path, os.stat_result]] = []
    total = 0
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not _skipped_dir(d))
        for name in sorted(names):
            path = Path(root) / name
            try:
                info = path.lstat()
            except OSError:
                continue
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
                continue
            if stat.S_ISREG(info.st_mode):
                if info.st_size > MAX_FILE_BYTES:
                    continue
                total += info.st_size
            out.append((path.relative_to(folder).as_posix(), path, info))
            if len(out) > MAX_FILES or total > MAX_TOTAL_BYTES:
                return None
    out.sort(key=lambda item: item[0])
    return out


def code_digest(folder: Path) -> str | None:
    """``sha256:<hex>`` of the folder's content (see the module docstring), or None."""
    if not folder.is_dir():
        return None
    files = _files(folder)
    if files is None:
        return None
    digest = hashlib.sha256()
    for rel, path, info in files:
        digest.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        if stat.S_ISLNK(info.st_mode):
            try:
                target = os.readlink(path)
            except OSError:
                continue
            digest.update(b"link:" + target.encode("utf-8", "surrogateescape") + b"\0")
            continue
        digest.update(info.st_size.to_bytes(8, "big"))
        try:
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        except OSError:
            digest.update(b"unreadable\0")
    return f"sha256:{digest.hexdigest()}"


def git_commit(folder: Path) -> str | None:
    """The commit checked out in the git repository holding ``folder`` (HEAD), or None when
    it is in none (or git is not installed)."""
    git = shutil.which("git")
    if git is None or not folder.is_dir():
        return None
    try:
        done = subprocess.run(
            [git, "-C", str(folder), "rev-parse", "--verify", "--quiet", "HEAD"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    if done.returncode != 0 or len(commit) < 40:
        return None
    return commit
