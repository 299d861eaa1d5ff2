"""The gRPC API: ``dapr.proto.runtime.v1.Dapr`` on the stubs the ``dapr`` package ships.

Every method the SDK's clients call for state, pub/sub, secrets, configuration,
metadata and invocation is served here; all others answer UNIMPLEMENTED so the SDK's
Alpha fallbacks work. Errors carry Dapr's status codes and an ``ErrorInfo`` detail.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from time import time_ns
from typing import Any

import orjson
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import (
    appcallback_pb2,
    configuration_pb2,
    dapr_pb2,
    metadata_pb2,
    pubsub_pb2,
    secret_pb2,
    state_pb2,
)
from google.protobuf import any_pb2, empty_pb2

from wonderland.dapr.cloudevents import is_json_content_type
from wonderland.dapr.components.base import ConfigItem, Message
from wonderland.dapr.errors import APIError
from wonderland.dapr.invocation import Invoker
from wonderland.dapr.metrics import SidecarMetrics
from wonderland.dapr.runtime import DaprRuntime, StateWrite
from wonderland.dapr.subscriptions import Subscription, SubscriptionManager
from wonderland.h2grpc import (
    GrpcServer,
    Method,
    RpcAbort,
    ServicerContext,
    StatusCode,
    service_methods,
)

__all__ = ["DaprGrpcServicer", "build_server"]

log = logging.getLogger("wonderland.dapr.grpc")

_CONCURRENCY = {0: "", 1: "first-write", 2: "last-write"}
_CONSISTENCY = {0: "", 1: "eventual", 2: "strong"}
_STATUS = {0: "SUCCESS", 1: "RETRY", 2: "DROP"}
_VERBS = {
    0: "POST",
    1: "GET",
    2: "HEAD",
    3: "POST",
    4: "PUT",
    5: "DELETE",
    6: "CONNECT",
    7: "OPTIONS",
    8: "TRACE",
    9: "PATCH",
}


async def _abort(context: ServicerContext, exc: APIError) -> None:
    from google.rpc import error_details_pb2, status_pb2

    code = StatusCode.__members__.get(exc.grpc_code, StatusCode.INTERNAL)
    status = status_pb2.Status(code=int(code), message=exc.message)
    if exc.reason:
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.ErrorInfo(reason=exc.reason, domain="dapr.io", metadata=exc.metadata)
        )
        status.details.append(detail)
    await context.abort(
        code,
        exc.message,
        trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
    )


def _api(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(self: DaprGrpcServicer, request: Any, context: ServicerContext) -> Any:
        try:
            return await fn(self, request, context)
        except APIError as exc:
            await _abort(context, exc)
        return None

    wrapper.__name__ = fn.__name__
    return wrapper


def _write(item: common_pb2.StateItem) -> StateWrite:
    return StateWrite(
        key=item.key,
        value=item.value,
        etag=item.etag.value if item.HasField("etag") else None,
        concurrency=_CONCURRENCY.get(item.options.concurrency, ""),
        consistency=_CONSISTENCY.get(item.options.consistency, ""),
        metadata=dict(item.metadata),
    )


def _event_data(event: dict[str, Any]) -> bytes:
    if "data_base64" in event:
        return base64.b64decode(event["data_base64"])
    data = event.get("data")
    if data is None:
        return b""
    if isinstance(data, str) and not is_json_content_type(str(event.get("datacontenttype", ""))):
        return data.encode()
    return orjson.dumps(data)


class DaprGrpcServicer:
    """The servicer; see the module docstring."""

    def __init__(self, runtime: DaprRuntime, invoker: Invoker, subs: SubscriptionManager) -> None:
        self.rt = runtime
        self.invoker = invoker
        self.subs = subs

    # -- state -----------------------------------------------------------------------------

    @_api
    async def GetState(self, request: Any, context: Any) -> Any:
        got = await self.rt.get_state(request.store_name, request.key)
        if got is None:
            return state_pb2.GetStateResponse()
        return state_pb2.GetStateResponse(
            data=got.data, etag=got.etag, metadata=self.rt.response_metadata(got)
        )

    @_api
    async def GetBulkState(self, request: Any, context: Any) -> Any:
        rows = await self.rt.bulk_get_state(request.store_name, list(request.keys))
        return state_pb2.GetBulkStateResponse(
            items=[
                state_pb2.BulkStateItem(
                    key=r["key"],
                    data=r.get("data", b""),
                    etag=r.get("etag", ""),
                    metadata=r.get("metadata", {}),
                )
                for r in rows
            ]
        )

    @_api
    async def SaveState(self, request: Any, context: Any) -> Any:
        writes = [_write(i) for i in request.states]
        if writes:
            await self.rt.save_state(request.store_name, writes)
        else:
            self.rt._store(request.store_name)
        return empty_pb2.Empty()

    @_api
    async def DeleteState(self, request: Any, context: Any) -> Any:
        etag = request.etag.value if request.HasField("etag") else None
        await self.rt.delete_state(
            request.store_name,
            request.key,
            etag,
            _CONCURRENCY.get(request.options.concurrency, ""),
            dict(request.metadata),
        )
        return empty_pb2.Empty()

    @_api
    async def DeleteBulkState(self, request: Any, context: Any) -> Any:
        for item in request.states:
            w = _write(item)
            await self.rt.delete_state(request.store_name, w.key, w.etag, w.concurrency, w.metadata)
        return empty_pb2.Empty()

    @_api
    async def ExecuteStateTransaction(self, request: Any, context: Any) -> Any:
        ops = [(op.operationType, _write(op.request)) for op in request.operations]
        meta = dict(request.metadata)
        for _kind, w in ops:
            w.metadata = {**meta, **w.metadata}
        await self.rt.transact(request.storeName, ops)
        return empty_pb2.Empty()

    @_api
    async def QueryStateAlpha1(self, request: Any, context: Any) -> Any:
        try:
            query = orjson.loads(request.query)
        except orjson.JSONDecodeError as exc:
            raise APIError(
                400,
                "ERR_MALFORMED_REQUEST",
                f"failed to parse the query: {exc}",
                grpc_code="INVALID_ARGUMENT",
            ) from None
        rows, token = await self.rt.query_state(request.store_name, query)
        return state_pb2.QueryStateResponse(
            results=[
                state_pb2.QueryStateItem(key=r["key"], data=r["data"], etag=r["etag"]) for r in rows
            ],
            token=token,
        )

    # -- pub/sub ---------------------------------------------------------------------------

    @_api
    async def PublishEvent(self, request: Any, context: Any) -> Any:
        tracing = self.invoker.tracing
        meta, span, parent_id = tracing.publish_metadata(
            list(context.invocation_metadata() or ()), dict(request.metadata)
        )
        started = time_ns()
        await self.rt.publish(
            request.pubsub_name,
            request.topic,
            request.data,
            request.data_content_type or "text/plain",
            meta,
        )
        attrs = {
            "messaging.system": request.pubsub_name,
            "messaging.destination.name": request.topic,
        }
        tracing.record(span, parent_id, f"publish {request.topic}", "PRODUCER", started, attrs)
        return empty_pb2.Empty()

    @_api
    async def BulkPublishEvent(self, request: Any, context: Any) -> Any:
        entries = [
            {
                "entryId": e.entry_id,
                "event": e.event,
                "contentType": e.content_type,
                "metadata": dict(e.metadata),
            }
            for e in request.entries
        ]
        failed = await self.rt.bulk_publish(
            request.pubsub_name, request.topic, entries, dict(request.metadata)
        )
        return pubsub_pb2.BulkPublishResponse(
            failedEntries=[
                pubsub_pb2.BulkPublishResponseFailedEntry(entry_id=f["entryId"], error=f["error"])
                for f in failed
            ]
        )

    BulkPublishEventAlpha1 = BulkPublishEvent

    async def SubscribeTopicEventsAlpha1(
        self, request_iterator: Any, context: Any
    ) -> AsyncIterator[Any]:
        try:
            first = await request_iterator.__anext__()
        except StopAsyncIteration:
            return
        if not first.HasField("initial_request"):
            await _abort(
                context,
                APIError(
                    400,
                    "ERR_MALFORMED_REQUEST",
                    "the first message must be initial_request",
                    grpc_code="INVALID_ARGUMENT",
                ),
            )
            return
        init = first.initial_request
        queue: asyncio.Queue[Any] = asyncio.Queue()
        pending: dict[str, asyncio.Future[str]] = {}

        async def sink(event: dict[str, Any], msg: Message) -> str:
            eid = str(event.get("id") or "")
            fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            pending[eid] = fut
            await queue.put(
                pubsub_pb2.SubscribeTopicEventsResponseAlpha1(
                    event_message=appcallback_pb2.TopicEventRequest(
                        id=eid,
                        source=str(event.get("source", "")),
                        type=str(event.get("type", "")),
                        spec_version=str(event.get("specversion", "")),
                        data_content_type=str(event.get("datacontenttype", "")),
                        data=_event_data(event),
                        topic=init.topic,
                        pubsub_name=init.pubsub_name,
                        path="",
                    )
                )
            )
            try:
                return await fut
            finally:
                pending.pop(eid, None)

        sub = Subscription(
            pubsubname=init.pubsub_name,
            topic=init.topic,
            default_path="/",
            dead_letter_topic=init.dead_letter_topic,
            metadata=dict(init.metadata),
            kind="STREAMING",
            sink=sink,
        )
        try:
            await self.subs.activate(sub)
        except APIError as exc:
            await _abort(context, exc)
            return

        async def reader() -> None:
            try:
                async for req in request_iterator:
                    if req.HasField("event_processed"):
                        fut = pending.get(req.event_processed.id)
                        if fut is not None and not fut.done():
                            fut.set_result(_STATUS.get(req.event_processed.status.status, "RETRY"))
            finally:
                await queue.put(None)

        task = asyncio.get_running_loop().create_task(reader())
        try:
            yield pubsub_pb2.SubscribeTopicEventsResponseAlpha1(
                initial_response=pubsub_pb2.SubscribeTopicEventsResponseInitialAlpha1()
            )
            while True:
                item = await queue.get()
                if item is None:
                    break
                yield item
        finally:
            task.cancel()
            for fut in pending.values():
                if not fut.done():
                    fut.set_result("RETRY")
            with contextlib.suppress(Exception):
                await self.subs.deactivate(sub)

    # -- secrets, configuration, metadata ----------------------------------------------------

    @_api
    async def GetSecret(self, request: Any, context: Any) -> Any:
        return secret_pb2.GetSecretResponse(
            data=await self.rt.get_secret(request.store_name, request.key, dict(request.metadata))
        )

    @_api
    async def GetBulkSecret(self, request: Any, context: Any) -> Any:
        got = await self.rt.bulk_secret(request.store_name, dict(request.metadata))
        return secret_pb2.GetBulkSecretResponse(
            data={k: secret_pb2.SecretResponse(secrets=v) for k, v in got.items()}
        )

    @staticmethod
    def _items(items: dict[str, ConfigItem]) -> dict[str, Any]:
        return {
            k: common_pb2.ConfigurationItem(value=v.value, version=v.version, metadata=v.metadata)
            for k, v in items.items()
        }

    @_api
    async def GetConfiguration(self, request: Any, context: Any) -> Any:
        items = await self.rt.get_configuration(
            request.store_name, list(request.keys), dict(request.metadata)
        )
        return configuration_pb2.GetConfigurationResponse(items=self._items(items))

    GetConfigurationAlpha1 = GetConfiguration

    async def SubscribeConfiguration(self, request: Any, context: Any) -> AsyncIterator[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def sink(sub_id: str, items: dict[str, ConfigItem]) -> None:
            await queue.put(
                configuration_pb2.SubscribeConfigurationResponse(
                    id=sub_id, items=self._items(items)
                )
            )

        try:
            sub_id = await self.rt.subscribe_configuration(
                request.store_name, list(request.keys), dict(request.metadata), sink
            )
        except APIError as exc:
            await _abort(context, exc)
            return
        self._streams = getattr(self, "_streams", {})
        self._streams[sub_id] = queue
        try:
            yield configuration_pb2.SubscribeConfigurationResponse(id=sub_id)
            while True:
                item = await queue.get()
                if item is None:
                    break
                yield item
        finally:
            self._streams.pop(sub_id, None)
            with contextlib.suppress(APIError):
                await self.rt.unsubscribe_configuration(request.store_name, sub_id)

    SubscribeConfigurationAlpha1 = SubscribeConfiguration

    @_api
    async def UnsubscribeConfiguration(self, request: Any, context: Any) -> Any:
        try:
            await self.rt.unsubscribe_configuration(request.store_name, request.id)
        except APIError as exc:
            if exc.status != 500:
                raise
            return configuration_pb2.UnsubscribeConfigurationResponse(ok=False, message=exc.message)
        queue = getattr(self, "_streams", {}).get(request.id)
        if queue is not None:
            await queue.put(None)
        return configuration_pb2.UnsubscribeConfigurationResponse(ok=True)

    UnsubscribeConfigurationAlpha1 = UnsubscribeConfiguration

    @_api
    async def GetMetadata(self, request: Any, context: Any) -> Any:
        md = self.rt.metadata()
        kinds = metadata_pb2.PubsubSubscriptionType
        conn = md["appConnectionProperties"]
        return metadata_pb2.GetMetadataResponse(
            id=md["id"],
            runtime_version=md["runtimeVersion"],
            registered_components=[
                metadata_pb2.RegisteredComponents(**c) for c in md["components"]
            ],
            extended_metadata=md["extended"],
            subscriptions=[
                metadata_pb2.PubsubSubscription(
                    pubsub_name=s["pubsubname"],
                    topic=s["topic"],
                    metadata=s["metadata"],
                    dead_letter_topic=s["deadLetterTopic"],
                    type=kinds.Value(s["type"]),
                    rules=metadata_pb2.PubsubSubscriptionRules(
                        rules=[
                            metadata_pb2.PubsubSubscriptionRule(match=r["match"], path=r["path"])
                            for r in s["rules"]
                        ]
                    ),
                )
                for s in md["subscriptions"]
            ],
            app_connection_properties=metadata_pb2.AppConnectionProperties(
                port=int(conn.get("port", 0)),
                protocol=conn["protocol"],
                channel_address=conn["channelAddress"],
            ),
        )

    @_api
    async def SetMetadata(self, request: Any, context: Any) -> Any:
        self.rt.extended[request.key] = request.value
        return empty_pb2.Empty()

    @_api
    async def Shutdown(self, request: Any, context: Any) -> Any:
        self.rt.shutdown_requested.set()
        return empty_pb2.Empty()

    @_api
    async def InvokeService(self, request: Any, context: Any) -> Any:
        msg = request.message
        ext = msg.http_extension
        verb = _VERBS.get(ext.verb, "POST")
        headers = [
            (k, v)
            for k, v in context.invocation_metadata()
            if not k.startswith((":", "grpc-")) or k == "grpc-trace-bin"
        ]
        if msg.content_type:
            headers.append(("content-type", msg.content_type))
        status, rheaders, body = await self.invoker.invoke(
            request.id, msg.method, verb, ext.querystring, headers, msg.data.value
        )
        ct = next((v for k, v in rheaders if k.lower() == "content-type"), "")
        if status // 100 != 2:
            raise APIError(
                status,
                "ERR_DIRECT_INVOKE",
                body.decode("utf-8", "replace") or f"app answered {status}",
                grpc_code="UNKNOWN" if status >= 500 else "INVALID_ARGUMENT",
            )
        return common_pb2.InvokeResponse(data=any_pb2.Any(value=body), content_type=ct)


def _unimplemented(name: str) -> Callable[..., Awaitable[None]]:
    async def method(self: Any, request: Any, context: ServicerContext) -> None:
        await context.abort(
            StatusCode.UNIMPLEMENTED,
            f"method {name} is not implemented by the wonderland sidecar",
        )

    method.__name__ = name
    return method


_SERVICE = dapr_pb2.DESCRIPTOR.services_by_name["Dapr"]
for _m in _SERVICE.methods:
    if _m.name not in vars(DaprGrpcServicer):
        setattr(DaprGrpcServicer, _m.name, _unimplemented(_m.name))


def _measured(
    path: str, handler: Callable[..., Awaitable[Any]], metrics: SidecarMetrics
) -> Callable[..., Awaitable[Any]]:
    """A unary handler that records daprd's ``dapr_grpc_io_server_*`` families."""

    async def wrapper(request: Any, context: ServicerContext) -> Any:
        start = time.perf_counter()
        status, sent = "UNKNOWN", 0
        try:
            response = await handler(request, context)
            if response is not None:
                status, sent = "OK", response.ByteSize()
            return response
        except RpcAbort as exc:
            status = exc.code.name
            raise
        finally:
            metrics.grpc_server(path, status, request.ByteSize(), sent, time.perf_counter() - start)

    return wrapper


def _measured_stream(
    path: str, handler: Callable[..., Any], metrics: SidecarMetrics
) -> Callable[..., AsyncIterator[Any]]:
    """A server-streaming handler recorded when its stream ends (sent: every message)."""

    async def wrapper(request: Any, context: ServicerContext) -> AsyncIterator[Any]:
        start = time.perf_counter()
        status, sent = "UNKNOWN", 0
        try:
            responses = handler(request, context)
            if inspect.iscoroutine(responses):  # a plain coroutine: aborts, or no messages
                await responses
            else:
                async for response in responses:
                    sent += response.ByteSize()
                    yield response
            status = "OK"
        except RpcAbort as exc:
            status = exc.code.name
            raise
        except (asyncio.CancelledError, GeneratorExit):
            status = "CANCELLED"
            raise
        finally:
            metrics.grpc_server(path, status, request.ByteSize(), sent, time.perf_counter() - start)

    return wrapper


def _measure(path: str, method: Method, metrics: SidecarMetrics) -> Method:
    if method.client_streaming:
        return method  # a bidirectional stream: no single request to measure
    if method.server_streaming:
        return dataclasses.replace(method, handler=_measured_stream(path, method.handler, metrics))
    return dataclasses.replace(method, handler=_measured(path, method.handler, metrics))


def build_server(runtime: DaprRuntime, invoker: Invoker, subs: SubscriptionManager) -> GrpcServer:
    """The gRPC API's server; ``await server.start(host, port)`` binds it."""
    token = runtime.opts.api_token

    def authenticate(metadata: tuple[tuple[str, str | bytes], ...]) -> bool:
        return any(k == "dapr-api-token" and v == token for k, v in metadata)

    servicer = DaprGrpcServicer(runtime, invoker, subs)
    methods = service_methods(_SERVICE, servicer)
    if runtime.metrics.enabled:
        methods = {path: _measure(path, m, runtime.metrics) for path, m in methods.items()}
    return GrpcServer(
        methods,
        max_receive_message_length=runtime.opts.max_body_bytes,
        authenticate=authenticate if token else None,
    )
