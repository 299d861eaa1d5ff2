"""A real `wonderland up` process for the core end-to-end tests (used by conftest.py)."""

from __future__ import annotations

import subprocess

from _support.daemon import READY_TIMEOUT, WonderlandDaemon

__all__ = ["READY_TIMEOUT", "Daemon"]


class Daemon(WonderlandDaemon):
    """One `wonderland up` process with its own state directory."""

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(*args, stdin=stdin)
