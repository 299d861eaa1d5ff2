"""gRPC adapter: ``inference.GRPCInferenceService`` on ``wonderland.h2grpc``.

Errors map by the exception's ``grpc_code``: INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE,
RESOURCE_EXHAUSTED (message size, enforced by the server), UNIMPLEMENTED, INTERNAL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

from wonderland.h2grpc import GrpcServer, Method, RpcAbort, StatusCode, service_methods
from wonderland.inference import metrics as server_metrics
from wonderland.inference._generated import grpc_predict_v2_pb2 as pb
from wonderland.inference.codec_grpc import decode_grpc_request, encode_grpc_response
from wonderland.inference.dataplane import GRPC, DataPlane
from wonderland.inference.errors import InferenceServerError
from wonderland.inference.stream_grpc import StreamInferHandler

__all__ = ["DEFAULT_MAX_MESSAGE_LENGTH", "InferenceServicer", "create_grpc_server"]

log = logging.getLogger("wonderland.inference")

DEFAULT_MAX_MESSAGE_LENGTH = 8 * 1024 * 1024  # KServe's default


async def _abort(context: Any, exc: Exception) -> None:
    if isinstance(exc, InferenceServerError):
        await context.abort(StatusCode[exc.grpc_code], str(exc))
    log.exception("unhandled error in gRPC call")
    await context.abort(StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")


def _trace(context: Any) -> dict[str, str]:
    """The trace context, for the hooks (and a transformer's predictor call)."""
    return {
        k: v
        for k, v in (context.invocation_metadata() or ())
        if k in ("traceparent", "tracestate") and isinstance(v, str)
    }


class InferenceServicer:
    """Translates gRPC calls to :class:`DataPlane` calls."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dp = dataplane
        self._streams = StreamInferHandler(dataplane)

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=self.dp.live)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.dp.ready())

    async def ModelReady(self, request: Any, context: Any) -> Any:
        try:
            return pb.ModelReadyResponse(
                ready=self.dp.model_ready(request.name, request.version or None)
            )
        except Exception as exc:
            await _abort(context, exc)
            raise

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        meta = self.dp.metadata()
        return pb.ServerMetadataResponse(
            name=meta["name"], version=meta["version"], extensions=meta["extensions"]
        )

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        try:
            meta = self.dp.model_metadata(request.name, request.version or None)
        except Exception as exc:
            await _abort(context, exc)
            raise
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta.get("versions", []),
            platform=meta["platform"],
            inputs=[tensor(**t) for t in meta["inputs"]],
            outputs=[tensor(**t) for t in meta["outputs"]],
        )

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        try:
            return await self.dp.serve_infer(
                GRPC,
                request.model_name,
                request.model_version or None,
                lambda: decode_grpc_request(request),
                encode_grpc_response,
                lambda: _trace(context),
            )
        except Exception as exc:
            await _abort(context, exc)
            raise

    def ModelStreamInfer(self, requests: Any, context: Any) -> AsyncIterator[Any]:
        return self._streams.serve(requests, lambda: _trace(context))

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        models = self.dp.repository_index(request.ready)
        index = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(
            models=[
                index(
                    name=m["name"],
                    version=m.get("version", ""),
                    state=m["state"],
                    reason=m["reason"],
                )
                for m in models
            ]
        )

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        name = request.model_name or request.triton_model_name
        try:
            await self.dp.load(name)
        except Exception as exc:
            await _abort(context, exc)
            raise
        return pb.RepositoryModelLoadResponse(model_name=name, isLoaded=True)

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        name = request.model_name or request.triton_model_name
        try:
            await self.dp.unload(name)
        except Exception as exc:
            await _abort(context, exc)
            raise
        return pb.RepositoryModelUnloadResponse(model_name=name, isUnloaded=True)


def _counted(service: str, method: Method) -> Method:
    """``method`` with py-grpc-prometheus' ``grpc_server_started``/``_handled`` counts."""
    kind = "UNARY"
    if method.client_streaming or method.server_streaming:
        kind = (
            "BIDI_STREAMING"
            if method.client_streaming and method.server_streaming
            else ("CLIENT_STREAMING" if method.client_streaming else "SERVER_STREAMING")
        )
    started = server_metrics.GRPC_STARTED.labels(kind, service, method.name)

    def handled(code: str) -> Any:
        return server_metrics.GRPC_HANDLED.labels(kind, service, method.name, code)

    inner = method.handler
    if method.server_streaming:

        async def streamed(request: Any, context: Any) -> AsyncIterator[Any]:
            started.inc()
            code = "UNKNOWN"
            try:
                async for response in inner(request, context):
                    yield response
                code = "OK"
            except RpcAbort as exc:
                code = exc.code.name
                raise
            except (asyncio.CancelledError, GeneratorExit):
                code = "CANCELLED"
                raise
            finally:
                handled(code).inc()

        return dataclasses.replace(method, handler=streamed)

    async def handler(request: Any, context: Any) -> Any:
        started.inc()
        try:
            result = await inner(request, context)
        except RpcAbort as exc:
            handled(exc.code.name).inc()
            raise
        except Exception:
            handled("UNKNOWN").inc()
            raise
        handled("OK").inc()
        return result

    return dataclasses.replace(method, handler=handler)


def create_grpc_server(
    dataplane: DataPlane,
    max_send_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
    max_receive_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
) -> GrpcServer:
    """The gRPC server (not listening yet: ``await server.start(host, port)``)."""
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    table = service_methods(service, InferenceServicer(dataplane))
    return GrpcServer(
        {path: _counted(service.full_name, m) for path, m in table.items()},
        max_receive_message_length=max_receive_message_length,
        max_send_message_length=max_send_message_length,
    )
