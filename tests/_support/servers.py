"""Third-party servers the tests start for real, each in its own process group."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from _support.daemon import READY_TIMEOUT, free_port, kill_group, wait_for

__all__ = ["start_moto"]


def start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """An S3-compatible server (moto) on a free port: its process and URL, once it answers.
    The caller stops it with ``kill_group(proc, signal.SIGKILL)``."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            return True
        return False

    try:
        wait_for(up, READY_TIMEOUT, "moto", interval=0.1)
    except BaseException:
        kill_group(proc, signal.SIGKILL)
        raise
    return proc, url
