"""REST adapter: a plain ASGI app for the Open Inference Protocol (V2) and KServe V1.

No framework and no per-request validation layer: routes are matched by string
operations, bodies parsed with orjson, tensors decoded straight into numpy. Every error
answers ``{"error": "..."}`` with the status its exception carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson

from wonderland.asgi import Receive, Scope, Send, accept_lifespan
from wonderland.inference import metrics
from wonderland.inference.codec_rest import decode_v2_request, encode_v2_response, parse_json
from wonderland.inference.dataplane import REST, DataPlane
from wonderland.inference.errors import (
    InferenceServerError,
    InvalidInputError,
    ModelNotFoundError,
    ModelNotReadyError,
    PayloadTooLargeError,
)
from wonderland.inference.generate_rest import GENERATE_ACTIONS, GenerateRoutes
from wonderland.inference.model import CustomModel
from wonderland.inference.openai_proxy import OpenAIProxyHooks, RawRequest
from wonderland.inference.openai_rest import OPENAI_PREFIX, OpenAIRoutes, openai_error
from wonderland.inference.predictor import ForwardedReply, PredictorClient
from wonderland.inference.sse import EventStream, JsonAnswer
from wonderland.inference.types import InferRequest

__all__ = ["RestApp"]

log = logging.getLogger("wonderland.inference")


_JSON = [(b"content-type", b"application/json")]
_OPTS = orjson.OPT_SERIALIZE_NUMPY
DEFAULT_MAX_REQUEST_SIZE = 64 * 1024 * 1024


class _Reply:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.body = body
        self.headers = headers


def _json(doc: Any, status: int = 200) -> _Reply:
    return _Reply(status, orjson.dumps(doc, option=_OPTS), _JSON)


class RestApp:
    """The ASGI application; ``RestApp(dataplane)`` is all a server needs."""

    def __init__(
        self, dataplane: DataPlane, max_request_size: int = DEFAULT_MAX_REQUEST_SIZE
    ) -> None:
        self.dataplane = dataplane
        self.max_request_size = max_request_size
        self._rest_metrics = metrics.RestMetrics()
        self._openai = OpenAIRoutes(dataplane.repository)
        self._generate = GenerateRoutes(dataplane.repository)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await accept_lifespan(receive, send)
            return
        if kind != "http":
            return
        method: str = scope["method"]
        in_progress = self._rest_metrics.in_progress(method)
        in_progress.inc()
        started = time.perf_counter()
        status = 500
        try:
            try:
                reply = await self._route(scope, receive)
            except InferenceServerError as exc:
                reply = _json({"error": str(exc)}, exc.status)
            except Exception as exc:  # a bug of ours: answer, log, keep serving
                log.exception("unhandled error on %s %s", method, scope["path"])
                reply = _json({"error": f"{type(exc).__name__}: {exc}"}, 500)
            if isinstance(reply, EventStream):
                status = 200
                await _send_stream(reply, receive, send)
                return
            status = reply.status
            headers = reply.headers
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [*headers, (b"content-length", str(len(reply.body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": reply.body})
        finally:
            in_progress.dec()
            route = route_template(scope["path"])
            self._rest_metrics.done(method, route, status, time.perf_counter() - started)

    async def _body(self, scope: Scope, receive: Receive) -> tuple[bytes, dict[bytes, bytes]]:
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        limit = self.max_request_size
        if length is not None and int(length) > limit:
            raise PayloadTooLargeError(
                f"request body of {int(length)} bytes is over the {limit}-byte limit "
                "(--max_request_size)"
            )
        chunks = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLargeError(
                        f"request body is over the {limit}-byte limit (--max_request_size)"
                    )
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return body, headers

    async def _route(self, scope: Scope, receive: Receive) -> _Reply | EventStream:
        path: str = scope["path"]
        method: str = scope["method"]
        dp = self.dataplane
        if path.startswith(OPENAI_PREFIX + "/"):
            return await self._openai_route(scope, receive)
        if path.startswith("/v2/models/"):
            rest = path[11:]
            parts = rest.split("/")
            name = parts[0]
            version = None
            tail = parts[1:]
            if len(tail) >= 2 and tail[0] == "versions":
                version = tail[1]
                tail = tail[2:]
            action = "/".join(tail)
            if action == "infer":
                self._need(method, "POST", path)
                return await self._infer(scope, receive, name, version)
            if action in GENERATE_ACTIONS:
                self._need(method, "POST", path)
                body, headers = await self._body(scope, receive)
                predictor = self._predictor_of(name)
                if predictor is not None:  # a transformer: the predictor generates
                    return _forwarded(await predictor.forward(path, body, _str_headers(headers)))
                return _answer(await self._generate.handle(action, name, version, body))
            if action == "":
                self._need(method, "GET", path)
                return _json(dp.model_metadata(name, version))
            if action == "ready":
                self._need(method, "GET", path)
                ready = dp.model_ready(name, version)
                if not ready:
                    raise ModelNotReadyError(f"model {name!r} is not ready")
                return _json({"name": name, "ready": True})
            if action == "config":
                self._need(method, "GET", path)
                return _json(dp.model_config(name, version))
            raise ModelNotFoundError(f"no route {method} {path}")
        if path.startswith("/v1/models/"):
            rest = path[11:]
            if ":" in rest:
                name, verb = rest.rsplit(":", 1)
                self._need(method, "POST", path)
                body, headers = await self._body(scope, receive)
                doc = parse_json(body, f"{verb} request")
                hdrs = _str_headers(headers)
                if verb == "predict":
                    return _json(await dp.predict_v1(name, doc, hdrs))
                if verb == "explain":
                    return _json(await dp.explain_v1(name, doc, hdrs))
                raise ModelNotFoundError(f"no route {method} {path}; use :predict or :explain")
            self._need(method, "GET", path)
            if not dp.model_ready(rest):
                raise ModelNotReadyError(f"model {rest!r} is not ready")
            return _json({"name": rest, "ready": True})
        if path.startswith("/v2/repository/"):
            self._need(method, "POST", path)
            body, _ = await self._body(scope, receive)
            if path == "/v2/repository/index":
                doc = parse_json(body, "repository index") if body.strip() else {}
                ready = bool(doc.get("ready", False)) if isinstance(doc, dict) else False
                return _json(dp.repository_index(ready))
            parts = path[len("/v2/repository/models/") :].split("/")
            if path.startswith("/v2/repository/models/") and len(parts) == 2:
                name, op = parts
                if op == "load":
                    await dp.load(name)
                    return _json({"name": name, "load": True})
                if op == "unload":
                    await dp.unload(name)
                    return _json({"name": name, "unload": True})
            raise ModelNotFoundError(f"no route {method} {path}")
        if path in ("/v2/health/live", "/"):
            return _json({"live": True} if path != "/" else {"status": "alive"})
        if path == "/v2/health/ready":
            if not dp.ready():
                raise ModelNotReadyError("server is not ready: models are still loading or failed")
            return _json({"ready": True})
        if path == "/v2":
            return _json(dp.metadata())
        if path == "/v2/models" or path == "/v1/models":
            return _json({"models": dp.repository.names()})
        if path == "/metrics":
            return _Reply(200, metrics.render(), [(b"content-type", metrics.CONTENT_TYPE.encode())])
        raise ModelNotFoundError(f"no route {method} {path}")

    async def _openai_route(self, scope: Scope, receive: Receive) -> _Reply | EventStream:
        """The OpenAI routes answer every error in OpenAI's shape."""
        doc: Any = None
        try:
            if scope["method"] == "POST":
                body, headers = await self._body(scope, receive)
                doc = parse_json(body, "request")
                name = doc.get("model") if isinstance(doc, dict) else None
                predictor = self._predictor_of(name) if isinstance(name, str) else None
                if predictor is not None:  # a transformer: the predictor answers
                    assert isinstance(doc, dict) and isinstance(name, str)
                    model = self.dataplane.repository.ready_entry(name).model
                    assert isinstance(model, CustomModel)
                    route = scope["path"].removeprefix(OPENAI_PREFIX)
                    hooks = OpenAIProxyHooks.of(model.obj, route)
                    if hooks is not None:  # KServe's OpenAIProxyModel hook names
                        doc, body = await hooks.request(doc, RawRequest(scope))
                    reply = await predictor.forward(scope["path"], body, _str_headers(headers))
                    if hooks is not None:
                        reply = await hooks.reply(reply, doc)
                    return _forwarded(reply)
        except InferenceServerError as exc:
            return _answer(openai_error(str(exc), exc.status))
        return _answer(await self._openai.handle(scope["method"], scope["path"], doc))

    def _predictor_of(self, name: str) -> PredictorClient | None:
        """The predictor a transformer model forwards to (None for any other model)."""
        try:
            model = self.dataplane.repository.ready_entry(name).model
        except InferenceServerError:
            return None  # the route answers the missing model in its own shape
        predictor = model.predictor if isinstance(model, CustomModel) else None
        return predictor if isinstance(predictor, PredictorClient) else None

    @staticmethod
    def _need(method: str, want: str, path: str) -> None:
        if method != want:
            raise _MethodNotAllowed(f"{method} is not allowed on {path}; use {want}")

    async def _infer(
        self, scope: Scope, receive: Receive, name: str, version: str | None
    ) -> _Reply:
        body, headers = await self._body(scope, receive)

        def decode() -> InferRequest:
            hlen = headers.get(b"inference-header-content-length")
            try:
                header_length = int(hlen) if hlen is not None else None
            except ValueError:
                raise InvalidInputError(
                    f"Inference-Header-Content-Length {hlen!r} is not an integer"
                ) from None
            return decode_v2_request(body, header_length, name, version)

        out, json_len = await self.dataplane.serve_infer(
            REST, name, version, decode, encode_v2_response, lambda: _str_headers(headers)
        )
        if json_len is None:
            return _Reply(200, out, _JSON)
        return _Reply(
            200,
            out,
            [
                (b"content-type", b"application/octet-stream"),
                (b"inference-header-content-length", str(json_len).encode()),
            ],
        )


_FIXED_ROUTES = frozenset(
    {"/", "/metrics", "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models", "/v1/models"}
)


def route_template(path: str) -> str:
    """The route a path matched, with parameters named (``/v2/models/{model_name}/infer``),
    as starlette_exporter's ``group_paths`` reports it; paths of no route are one
    ``<unmatched>`` series, so scanners cannot mint series."""
    if path in _FIXED_ROUTES:
        return path
    if path.startswith("/v2/models/"):
        parts = path[11:].split("/")
        out = "/v2/models/{model_name}"
        tail = parts[1:]
        if len(tail) >= 2 and tail[0] == "versions":
            out += "/versions/{model_version}"
            tail = tail[2:]
        action = "/".join(tail)
        if action in ("", "infer", "ready", "config", *GENERATE_ACTIONS):
            return f"{out}/{action}" if action else out
        return "<unmatched>"
    if path.startswith("/v1/models/"):
        rest = path[11:]
        if ":" in rest:
            verb = rest.rsplit(":", 1)[1]
            if verb in ("predict", "explain"):
                return "/v1/models/{model_name}:" + verb
            return "<unmatched>"
        return "/v1/models/{model_name}"
    if path.startswith(OPENAI_PREFIX + "/"):
        if path[len(OPENAI_PREFIX) :] in _OPENAI_ROUTES:
            return path
        return "<unmatched>"
    if path.startswith("/v2/repository/"):
        if path == "/v2/repository/index":
            return path
        op = path.rsplit("/", 1)[-1]
        if path.startswith("/v2/repository/models/") and op in ("load", "unload"):
            return "/v2/repository/models/{model_name}/" + op
    return "<unmatched>"


_OPENAI_ROUTES = frozenset({"/models", "/completions", "/chat/completions", "/embeddings"})


def _forwarded(reply: ForwardedReply) -> _Reply | EventStream:
    if reply.chunks is not None:
        return EventStream(reply.chunks)
    return _Reply(reply.status, reply.body, [(b"content-type", reply.content_type.encode())])


def _answer(answer: JsonAnswer | EventStream) -> _Reply | EventStream:
    if isinstance(answer, JsonAnswer):
        return _json(answer.doc, answer.status)
    return answer


async def _send_stream(stream: EventStream, receive: Receive, send: Send) -> None:
    """Send each chunk as it comes; a client that goes away closes the stream, which stops
    the generation behind it."""
    await send({"type": "http.response.start", "status": 200, "headers": stream.headers})

    async def pump() -> None:
        async with contextlib.aclosing(stream.chunks) as chunks:
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    pumping = asyncio.ensure_future(pump())
    watching = asyncio.ensure_future(gone())
    try:
        await asyncio.wait((pumping, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (watching, pumping):
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _MethodNotAllowed(InferenceServerError):
    status = 405
    grpc_code = "UNIMPLEMENTED"


def _str_headers(headers: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in headers.items()}
