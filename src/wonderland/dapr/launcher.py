"""``wonderland sidecar ... -- CMD``: run the sidecar and the app together, stop them together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from wonderland.dapr.runtime import RuntimeOptions
from wonderland.dapr.sidecar import Sidecar

__all__ = ["run"]

log = logging.getLogger("wonderland.dapr")


async def _stop_process(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


async def run(options: RuntimeOptions, command: Sequence[str]) -> int:
    """Serve until SIGINT/SIGTERM, ``/v1.0/shutdown``, or the app command exits; return its code."""
    sidecar = Sidecar(options)
    await sidecar.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(
        f"wonderland sidecar: app id {options.app_id!r}, HTTP API on 127.0.0.1:{sidecar.http_port}, "
        f"gRPC API on 127.0.0.1:{sidecar.grpc_port}"
        + (f", app port {options.app_port}" if options.app_port else ""),
        file=sys.stderr,
        flush=True,
    )
    proc: asyncio.subprocess.Process | None = None
    code = 0
    try:
        if command:
            env = {
                **os.environ,
                "APP_ID": options.app_id,
                "DAPR_HTTP_PORT": str(sidecar.http_port),
                "DAPR_GRPC_PORT": str(sidecar.grpc_port),
                "APP_PROTOCOL": options.app_protocol,
                "APP_CHANNEL_ADDRESS": options.app_channel_address,
            }
            if options.app_port:
                env["APP_PORT"] = str(options.app_port)
            try:
                proc = await asyncio.create_subprocess_exec(
                    *command, env=env, start_new_session=True
                )
            except OSError as exc:
                from wonderland.errors import ConfigError

                raise ConfigError(
                    f"cannot start the app command {command[0]!r}: {exc.strerror}"
                ) from None
        waiters: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(sidecar.wait_for_shutdown()),
        ]
        if proc is not None:
            waiters.append(asyncio.ensure_future(proc.wait()))
        _done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()
        if proc is not None and proc.returncode is not None:
            code = proc.returncode
            log.info("the app exited with code %d; stopping the sidecar", code)
    finally:
        if proc is not None:
            await _stop_process(proc)
        await sidecar.stop()
    return code
