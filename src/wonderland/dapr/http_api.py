"""The HTTP API v1.0 as a plain ASGI app: parse, call the core, map errors.

Status codes, error codes and body shapes follow daprd's code (``pkg/api/http``), which
differs from its docs in places (bulk get ``data``, configuration get 200, ETag 409/400).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from time import time_ns
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson

from wonderland.dapr.components.base import ConfigItem
from wonderland.dapr.errors import APIError
from wonderland.dapr.http_server import RawRequest, RawResponse
from wonderland.dapr.invocation import Invoker
from wonderland.dapr.runtime import DaprRuntime, StateWrite, malformed

__all__ = ["HTTPAPI"]

log = logging.getLogger("wonderland.dapr.http")

_JSON = [(b"content-type", b"application/json")]
_HEALTH = {"/v1.0/healthz", "/v1.0/healthz/outbound"}


class _Request:
    __slots__ = ("body", "client", "headers", "method", "path", "query", "raw_query")

    def __init__(self, raw: RawRequest) -> None:
        self.method = raw.method
        self.path = raw.path
        self.raw_query = raw.query
        self.query = parse_qsl(raw.query, keep_blank_values=True) if raw.query else []
        self.headers = raw.headers
        self.body = raw.body
        self.client = raw.client

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return str(v)
        return None

    def param(self, name: str) -> str:
        for k, v in self.query:
            if k == name:
                return str(v)
        return ""

    def metadata(self) -> dict[str, str]:
        return {k[9:]: v for k, v in self.query if k.startswith("metadata.")}

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise malformed(f"failed to parse the request body as JSON: {exc}") from None


_Response = RawResponse


def _json(status: int, value: Any) -> _Response:
    return _Response(status, orjson.dumps(value), list(_JSON))


def _empty() -> _Response:
    return _Response(204)


def _json_value(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _data_field(data: bytes) -> Any:
    try:
        orjson.loads(data)
        return orjson.Fragment(data)
    except orjson.JSONDecodeError:
        return data.decode("utf-8", "replace")


def _options(item: dict[str, Any]) -> tuple[str, str]:
    opts = item.get("options") or {}
    if not isinstance(opts, dict):
        raise malformed("options must be an object")
    return str(opts.get("concurrency") or ""), str(opts.get("consistency") or "")


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise malformed(f"{what} must be an object of strings")
    return {str(k): v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in value.items()}


def _state_write(item: Any, query_meta: dict[str, str]) -> StateWrite:
    if not isinstance(item, dict):
        raise malformed("each state item must be an object with key and value")
    key = item.get("key")
    if not key:
        raise malformed('"key" is a required field')
    concurrency, consistency = _options(item)
    etag = item.get("etag")
    return StateWrite(
        key=str(key),
        value=_json_value(item.get("value")),
        etag=None if etag is None else str(etag),
        concurrency=concurrency,
        consistency=consistency,
        metadata={**query_meta, **_str_map(item.get("metadata"), "metadata")},
    )


class HTTPAPI:
    """ASGI application serving ``/v1.0/...`` for one :class:`DaprRuntime`."""

    def __init__(
        self, runtime: DaprRuntime, invoker: Invoker, app_ready: Callable[[], bool]
    ) -> None:
        self.rt = runtime
        self.invoker = invoker
        self.app_ready = app_ready
        self.token = runtime.opts.api_token
        self.max_body = runtime.opts.max_body_bytes
        self.config_sink: Callable[[str, str, dict[str, ConfigItem]], Awaitable[None]] | None = None

    async def handle(self, raw: RawRequest) -> RawResponse:
        """Answer one request (the entry point of :func:`wonderland.dapr.http_server.serve`)."""
        req = _Request(raw)
        if self.token and req.path not in _HEALTH and req.header("dapr-api-token") != self.token:
            return _Response(401, b"invalid api token", [(b"content-type", b"text/plain")])
        if self.rt.opts.api_logging:
            started = time.perf_counter()
            response = await self._answer(req)
            log.info(
                "HTTP API Called: app_id=%s method=%s %s code=%d duration=%.3fms",
                self.rt.app_id,
                req.method,
                req.path,
                response.status,
                (time.perf_counter() - started) * 1000,
            )
            return response
        return await self._answer(req)

    async def _answer(self, req: _Request) -> _Response:
        try:
            return await self.dispatch(req)
        except APIError as exc:
            return _json(exc.status, exc.body())
        except Exception as exc:
            log.exception("unexpected error on %s %s", req.method, req.path)
            return _json(
                500,
                {
                    "errorCode": "ERR_INTERNAL",
                    "message": f"internal error: {type(exc).__name__}: {exc}",
                },
            )

    async def dispatch(self, req: _Request) -> _Response:
        app_header = req.header("dapr-app-id")
        if app_header is not None:
            return await self.invoke(req, app_header, req.path.lstrip("/"))
        parts = req.path.split("/")
        if len(parts) < 3 or parts[0] != "":
            return _Response(404)
        version, area, rest = parts[1], parts[2], parts[3:]
        m = req.method
        if version == "v1.0":
            if area == "state" and rest:
                return await self.state(req, rest)
            if area == "publish" and rest:
                if rest[0] == "bulk" and len(rest) >= 3 and m in {"POST", "PUT"}:
                    return await self.bulk_publish(req, rest[1], "/".join(rest[2:]))
                return await self.publish(req, rest)
            if area == "invoke" and len(rest) >= 2 and rest[1] == "method":
                return await self.invoke(req, unquote(rest[0]), "/".join(rest[2:]))
            if area == "healthz":
                return self.health(req, rest)
            if area == "secrets" and len(rest) == 2 and m == "GET":
                return await self.secrets(req, rest[0], rest[1])
            if area == "configuration" and rest:
                return await self.configuration(req, rest)
            if area == "metadata":
                return await self.metadata(req, rest)
            if area == "shutdown" and m == "POST":
                self.rt.shutdown_requested.set()
                return _empty()
        elif version == "v1.0-alpha1":
            if area == "state" and len(rest) == 2 and rest[1] == "query" and m in {"POST", "PUT"}:
                return await self.query(req, rest[0])
            if area == "publish" and len(rest) >= 3 and rest[0] == "bulk" and m in {"POST", "PUT"}:
                return await self.bulk_publish(req, rest[1], "/".join(rest[2:]))
            if area == "configuration" and rest:
                return await self.configuration(req, rest)
        return _json(
            404, {"errorCode": "ERR_NOT_FOUND", "message": f"no route for {req.method} {req.path}"}
        )

    # -- state -----------------------------------------------------------------------------

    async def state(self, req: _Request, rest: list[str]) -> _Response:
        store = unquote(rest[0])
        m = req.method
        if len(rest) == 1 and m in {"POST", "PUT"}:
            items = req.json()
            if not isinstance(items, list):
                raise malformed("the body must be a JSON array of state items")
            qmeta = req.metadata()
            writes = [_state_write(i, qmeta) for i in items]
            if writes:
                await self.rt.save_state(store, writes)
            else:
                self.rt._store(store)
            return _empty()
        if len(rest) == 2 and rest[1] == "bulk" and m in {"POST", "PUT"}:
            body = req.json()
            if not isinstance(body, dict) or not isinstance(body.get("keys", []), list):
                raise malformed('the body must be {"keys": [...]}')
            rows = await self.rt.bulk_get_state(store, [str(k) for k in body.get("keys") or []])
            for row in rows:
                if "data" in row:
                    row["data"] = _data_field(row["data"])
            return _json(200, rows)
        if len(rest) == 2 and rest[1] == "transaction" and m in {"POST", "PUT"}:
            body = req.json()
            if not isinstance(body, dict):
                raise malformed('the body must be {"operations": [...]}')
            qmeta = {**req.metadata(), **_str_map(body.get("metadata"), "metadata")}
            operations = body.get("operations") or []
            if not isinstance(operations, list):
                raise malformed('"operations" must be a list of {"operation", "request"} objects')
            ops: list[tuple[str, StateWrite]] = []
            for op in operations:
                if not isinstance(op, dict):
                    raise malformed("each operation must be an object")
                kind = str(op.get("operation") or "")
                ops.append((kind, _state_write(op.get("request") or {}, qmeta)))
            await self.rt.transact(store, ops)
            return _empty()
        if len(rest) >= 2:
            key = unquote("/".join(rest[1:]))
            if m == "GET":
                got = await self.rt.get_state(store, key)
                if got is None:
                    return _empty()
                headers = [(b"content-type", b"application/json"), (b"etag", got.etag.encode())]
                for k, v in self.rt.response_metadata(got).items():
                    headers.append((f"metadata.{k}".encode(), v.encode()))
                return _Response(200, got.data, headers)
            if m == "DELETE":
                etag = req.header("if-match")
                await self.rt.delete_state(
                    store, key, etag, req.param("concurrency"), req.metadata()
                )
                return _empty()
        return _Response(405)

    async def query(self, req: _Request, store: str) -> _Response:
        body = req.json()
        if not isinstance(body, dict):
            raise malformed("the query must be a JSON object")
        rows, token = await self.rt.query_state(store, body)
        if not rows:
            return _empty()
        for row in rows:
            row["data"] = _data_field(row["data"])
        return _json(200, {"results": rows, "token": token, "metadata": {}})

    # -- pub/sub ---------------------------------------------------------------------------

    async def publish(self, req: _Request, rest: list[str]) -> _Response:
        if req.method not in {"POST", "PUT"}:
            return _Response(405)
        pubsub = unquote(rest[0])
        topic = unquote("/".join(rest[1:]))
        ct = req.header("content-type") or "text/plain"
        tracing = self.invoker.tracing
        meta, span, parent_id = tracing.publish_metadata(req.headers, req.metadata())
        started = time_ns()
        await self.rt.publish(pubsub, topic, req.body, ct, meta)
        attrs = {"messaging.system": pubsub, "messaging.destination.name": topic}
        tracing.record(span, parent_id, f"publish {topic}", "PRODUCER", started, attrs)
        return _empty()

    async def bulk_publish(self, req: _Request, pubsub: str, topic: str) -> _Response:
        body = req.json()
        if not isinstance(body, list):
            raise malformed("the body must be a JSON array of entries")
        entries = []
        for e in body:
            if not isinstance(e, dict):
                raise malformed("each entry must be an object with entryId, event and contentType")
            ct = str(e.get("contentType") or "")
            ev = e.get("event")
            if isinstance(ev, str) and not ct.endswith("json"):
                data = ev.encode()
            else:
                data = orjson.dumps(ev)
            entries.append(
                {
                    "entryId": str(e.get("entryId") or ""),
                    "event": data,
                    "contentType": ct,
                    "metadata": _str_map(e.get("metadata"), "metadata"),
                }
            )
        failed = await self.rt.bulk_publish(pubsub, topic, entries, req.metadata())
        if failed:
            return _json(500, {"failedEntries": failed, "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE"})
        return _empty()

    # -- invocation ------------------------------------------------------------------------

    async def invoke(self, req: _Request, app_id: str, method: str) -> _Response:
        status, headers, body = await self.invoker.invoke(
            app_id,
            method,
            req.method,
            req.raw_query,
            req.headers,
            req.body,
            caller=req.header("dapr-caller-app-id"),
            client_host=req.client or "127.0.0.1",
        )
        out = [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in headers
            if k.lower()
            not in {
                "content-length",
                "transfer-encoding",
                "connection",
                "keep-alive",
                "date",
                "server",
            }
        ]
        return _Response(status, body, out)

    # -- health, metadata, secrets, configuration ------------------------------------------

    def health(self, req: _Request, rest: list[str]) -> _Response:
        if req.method != "GET":
            return _Response(405)
        if rest == ["outbound"]:
            if self.rt.ready:
                return _empty()
            return _json(
                500,
                {
                    "errorCode": "ERR_OUTBOUND_HEALTH_NOT_READY",
                    "message": "dapr outbound is not ready",
                },
            )
        appid = req.param("appid")
        if appid and appid != self.rt.app_id:
            return _json(
                500,
                {
                    "errorCode": "ERR_HEALTH_APPID_NOT_MATCH",
                    "message": "dapr app-id does not match",
                },
            )
        if self.rt.ready and self.app_ready():
            return _empty()
        return _json(500, {"errorCode": "ERR_HEALTH_NOT_READY", "message": "dapr is not ready"})

    async def metadata(self, req: _Request, rest: list[str]) -> _Response:
        if not rest and req.method == "GET":
            return _json(200, self.rt.metadata())
        if len(rest) == 1 and req.method == "PUT":
            self.rt.extended[unquote(rest[0])] = req.body.decode("utf-8", "replace")
            return _empty()
        return _Response(405)

    async def secrets(self, req: _Request, store: str, name: str) -> _Response:
        if name == "bulk":
            return _json(200, await self.rt.bulk_secret(store, req.metadata()))
        return _json(200, await self.rt.get_secret(store, unquote(name), req.metadata()))

    async def configuration(self, req: _Request, rest: list[str]) -> _Response:
        if req.method != "GET":
            return _Response(405)
        store = rest[0]
        keys = [v for k, v in req.query if k == "key"]
        if len(rest) == 1:
            items = await self.rt.get_configuration(store, keys, req.metadata())
            if not items:
                return _empty()
            return _json(200, {k: v.to_json() for k, v in items.items()})
        if len(rest) == 2 and rest[1] == "subscribe":
            if self.config_sink is None:
                raise APIError(
                    500,
                    "ERR_APP_CHANNEL_NIL",
                    "app channel is nil; start the sidecar with --app-port",
                )
            sink = self.config_sink

            async def deliver(sub_id: str, items: dict[str, ConfigItem]) -> None:
                await sink(store, sub_id, items)

            sub_id = await self.rt.subscribe_configuration(store, keys, req.metadata(), deliver)
            return _json(200, {"id": sub_id})
        if len(rest) == 3 and rest[2] == "unsubscribe":
            try:
                await self.rt.unsubscribe_configuration(store, rest[1])
            except APIError as exc:
                if exc.status == 500:
                    return _json(500, {"ok": False, "message": exc.message})
                raise
            return _json(200, {"ok": True})
        return _json(
            404, {"errorCode": "ERR_NOT_FOUND", "message": f"no route for {req.method} {req.path}"}
        )
