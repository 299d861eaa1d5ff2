"""Third-party servers the tests start for real, each in its own process group."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

from _support.daemon import READY_TIMEOUT, free_port, kill_group, wait_for, wait_until

__all__ = ["asgi_replica", "moto_endpoint", "s3_bucket", "start_moto"]


def moto_endpoint(tmp_path_factory: Any) -> Iterator[str]:
    """The body of a module-scoped ``s3_endpoint`` fixture: moto's URL while the module runs
    (skipped where moto is missing, except under ``CI=true``, where that fails)."""
    import os

    import pytest

    if os.environ.get("CI") != "true":
        pytest.importorskip("moto.server", reason="moto[server] (a dev dependency) is missing")
    proc, url = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield url
    finally:
        kill_group(proc, signal.SIGKILL)


def s3_bucket(endpoint: str, name: str, objects: Mapping[str, bytes]) -> None:
    """Create bucket ``name`` on ``endpoint`` holding ``objects`` (key -> body)."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    s3.create_bucket(Bucket=name)
    for key, body in objects.items():
        s3.put_object(Bucket=name, Key=key, Body=body)


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
        await wait_until(lambda: server.started or task.done(), what="the test replica")
        assert server.started, "test replica did not start"
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
