"""A real `wonderland up` process for end-to-end tests (used by conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

READY_TIMEOUT = 30.0


@dataclass
class Daemon:
    """One `wonderland up` process with its own state directory."""

    home: Path
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    server: str = ""
    extra_args: list[str] = field(default_factory=list)

    def start(self, *args: str) -> Daemon:
        info = self.home / "daemon.json"
        info.unlink(missing_ok=True)
        out = open(self.log, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wonderland", "up", *args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited: {self.log.read_text()}")
            if info.exists():
                try:
                    self.server = json.loads(info.read_text())["server"]
                    break
                except (ValueError, KeyError):
                    pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the daemon did not start: {self.log.read_text()}")
            time.sleep(0.05)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "wonderland", *args],
            env=self.env,
            capture_output=True,
            text=True,
            input=stdin,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str) -> str:
        result = self.cli(*args)
        assert result.returncode == 0, f"wonderland {' '.join(args)}: {result.stderr}"
        return result.stdout
