"""Third-party servers the tests start for real, each in its own process group."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from _support.daemon import READY_TIMEOUT, free_port, kill_group, wait_for

__all__ = ["asgi_replica", "start_moto"]


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


@contextlib.asynccontextmanager
async def asgi_replica(app: Any) -> AsyncIterator[int]:
    """Serve an ASGI app with uvicorn in this event loop on a free port; yields the port
    once it listens, and always shuts the server down."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(600):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "test replica did not start"
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
