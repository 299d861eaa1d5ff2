"""Service invocation: the own app through the app channel, other app ids through their sidecar.

Other sidecars are found through a :class:`NameResolver`. Standalone sidecars register
in a folder of small JSON files under the state directory (no mDNS); the platform plugs
in its own resolver.
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import time_ns
from typing import Any

import orjson

from wonderland.dapr.app_channel import AppChannel
from wonderland.dapr.errors import APIError
from wonderland.dapr.metrics import SidecarMetrics
from wonderland.dapr.resiliency import ResiliencyEngine
from wonderland.dapr.tracing import SidecarTracing

__all__ = ["FileNameResolver", "Invoker", "NameResolver"]

#: Returns the HTTP base URL (``http://127.0.0.1:3500``) of the sidecar of an app id, or None.
NameResolver = Callable[[str], Awaitable[str | None]]

_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
    "host",
    "content-length",
    "dapr-app-id",
    "dapr-api-token",
    "dapr-caller-app-id",
    "dapr-callee-app-id",
}


class FileNameResolver:
    """App id → sidecar address, as one JSON file per running sidecar in a shared folder.

    Files are named ``<app-id>[.<namespace>]@<pid>.json``; with several replicas of one
    app id, each call picks one of the live sidecars at random.
    """

    def __init__(self, folder: Path, namespace: str = "") -> None:
        self.folder = folder
        self.namespace = namespace

    def _qualified(self, app_id: str) -> str:
        if "." in app_id or not self.namespace:
            return app_id
        return f"{app_id}.{self.namespace}"

    def register(self, app_id: str, http_port: int, grpc_port: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{self._qualified(app_id)}@{os.getpid()}.json"
        tmp = self.folder / f".{name}.tmp"
        tmp.write_bytes(
            orjson.dumps({"httpPort": http_port, "grpcPort": grpc_port, "pid": os.getpid()})
        )
        tmp.replace(self.folder / name)

    def unregister(self, app_id: str) -> None:
        with contextlib.suppress(OSError):
            (self.folder / f"{self._qualified(app_id)}@{os.getpid()}.json").unlink()

    async def __call__(self, app_id: str) -> str | None:
        live: list[str] = []
        for path in self.folder.glob(f"{glob.escape(self._qualified(app_id))}@*.json"):
            try:
                info = orjson.loads(path.read_bytes())
                os.kill(int(info["pid"]), 0)
            except ProcessLookupError:
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            except PermissionError:
                pass
            except (OSError, ValueError, KeyError, orjson.JSONDecodeError):
                continue
            live.append(f"http://127.0.0.1:{int(info['httpPort'])}")
        return random.choice(live) if live else None


class Invoker:
    """Routes ``invoke/{app-id}/method/...`` calls and maps failures to ERR_DIRECT_INVOKE."""

    def __init__(
        self,
        app_id: str,
        channel: AppChannel | None,
        resolver: NameResolver | None,
        resiliency: ResiliencyEngine,
        api_token: str = "",
        namespace: str = "",
        tracing: SidecarTracing | None = None,
        metrics: SidecarMetrics | None = None,
    ) -> None:
        self.app_id = app_id
        self.tracing = tracing or SidecarTracing(app_id)
        self.metrics = metrics if metrics is not None and metrics.enabled else None
        self.namespace = namespace
        self.channel = channel
        self.resolver = resolver
        self.resiliency = resiliency
        self.api_token = api_token
        self._remote: dict[str, AppChannel] = {}

    async def close(self) -> None:
        for ch in self._remote.values():
            await ch.close()
        self._remote.clear()

    async def invoke(
        self,
        target: str,
        method: str,
        verb: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        caller: str | None = None,
        client_host: str = "127.0.0.1",
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if not target:
            raise APIError(
                404,
                "ERR_DIRECT_INVOKE",
                "failed getting app id either from the URL path or the header dapr-app-id",
                grpc_code="NOT_FOUND",
            )
        app_id = target
        if target == self.app_id or (
            self.namespace and target == f"{self.app_id}.{self.namespace}"
        ):
            app_id = self.app_id
        fwd = [(k, v) for k, v in headers if k.lower() not in _HOP]
        # continue the caller's trace: this sidecar's span is the callee's parent
        fwd, span, parent_id = self.tracing.forward(fwd)
        started = time_ns()
        if app_id == self.app_id:
            if self.channel is None:
                raise APIError(
                    500,
                    "ERR_DIRECT_INVOKE",
                    f"failed to invoke, id: {target}, err: app channel is not initialized; start the sidecar with --app-port",
                    grpc_code="INTERNAL",
                )
            fwd += [
                ("dapr-caller-app-id", caller or self.app_id),
                ("dapr-callee-app-id", self.app_id),
            ]
            fwd += [
                ("X-Forwarded-For", client_host),
                ("Forwarded", f"for={client_host};by={self.channel.address}"),
            ]
            channel = self.channel
            path = "/" + method
        else:
            channel = await self._channel_for(app_id, target)
            path = f"/v1.0/invoke/{app_id}/method/{method}"
            fwd.append(("dapr-caller-app-id", self.app_id))
            if self.api_token:
                fwd.append(("dapr-api-token", self.api_token))
        policy = self.resiliency.app(app_id)
        local = app_id == self.app_id
        name = f"CallLocal/{app_id}/{method}" if local else f"/invoke/{app_id}/method/{method}"
        kind = "SERVER" if local else "CLIENT"
        attrs: dict[str, Any] = {"rpc.service": "ServiceInvocation", "dapr.target_app_id": app_id}
        start = time.perf_counter()
        status = 0
        try:
            result = await policy.run(
                lambda: channel.request(verb, path, query=query, headers=fwd, body=body)
            )
            status = result[0]
        except (OSError, TimeoutError) as exc:
            self.tracing.record(span, parent_id, name, kind, started, attrs, True)
            raise APIError(
                500,
                "ERR_DIRECT_INVOKE",
                f"failed to invoke, id: {target}, err: {exc or type(exc).__name__}",
                grpc_code="INTERNAL",
            ) from None
        except Exception as exc:
            self.tracing.record(span, parent_id, name, kind, started, attrs, True)
            raise APIError(
                500,
                "ERR_DIRECT_INVOKE",
                f"failed to invoke, id: {target}, err: {exc}",
                grpc_code="INTERNAL",
            ) from None
        finally:
            if self.metrics is not None:
                if local:
                    self.metrics.invocation_received(caller or self.app_id, status)
                else:
                    self.metrics.invocation_sent(app_id, status, time.perf_counter() - start)
        attrs["http.response.status_code"] = result[0]
        self.tracing.record(span, parent_id, name, kind, started, attrs, result[0] >= 500)
        return result

    async def _channel_for(self, app_id: str, target: str) -> AppChannel:
        base = await self.resolver(app_id) if self.resolver is not None else None
        if base is None:
            raise APIError(
                500,
                "ERR_DIRECT_INVOKE",
                f"failed to invoke, id: {target}, err: couldn't find service: {app_id}; "
                "is a sidecar with that --app-id running?",
                grpc_code="INTERNAL",
            )
        ch = self._remote.get(base)
        if ch is None:
            host, _, port = base.removeprefix("http://").rpartition(":")
            ch = AppChannel(host, int(port))
            await ch.start()
            self._remote[base] = ch
        return ch
