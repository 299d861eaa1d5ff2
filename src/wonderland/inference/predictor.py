"""Transformer mode: a custom model without its own ``predict`` forwards to a predictor.

As in KServe, ``--predictor_host host[:port]`` makes the default ``predict`` call another
model server: REST V1 (``/v1/models/{m}:predict``), REST V2 (``/v2/models/{m}/infer``) or
gRPC V2 (``ModelInfer``), chosen by ``--predictor_protocol`` (``v1``, ``v2``, ``grpc-v2``).
Connections are pooled; the predictor's error status is passed through.

The generative routes (OpenAI, ``generate``, ``generate_stream``, ``infer_stream``) are
passed through to the predictor over REST as they are (:meth:`PredictorClient.forward`):
a streamed answer comes back event by event, and a client that goes away closes the
predictor's stream too, which stops its generation.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from wonderland.inference.errors import InferenceServerError, InvalidInputError
from wonderland.inference.types import InferOutput, InferRequest, InferResponse
from wonderland.tracing.context import child
from wonderland.tracing.runtime import mode_from_env

__all__ = ["PREDICTOR_PROTOCOLS", "ForwardedReply", "PredictorClient", "PredictorError"]

PREDICTOR_PROTOCOLS = ("v1", "v2", "grpc-v2")


class PredictorError(InferenceServerError):
    """The predictor answered with an error; its status is kept."""

    def __init__(self, message: str, status: int, grpc_code: str) -> None:
        super().__init__(message)
        self.status = status
        self.grpc_code = grpc_code


@dataclass(slots=True)
class ForwardedReply:
    """The predictor's answer to a passed-through request: a whole ``body``, or ``chunks``
    of a ``text/event-stream`` as they arrive (closing them closes the predictor's stream)."""

    status: int
    content_type: str
    body: bytes = b""
    chunks: AsyncGenerator[bytes, None] | None = None


_TRACE_HEADERS = ("traceparent", "tracestate")
_HTTP_TO_GRPC = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 413: "RESOURCE_EXHAUSTED"}


def _v2_json(request: InferRequest) -> dict[str, Any]:
    inputs = []
    for t in request.inputs:
        data = t.data
        if t.datatype == "BYTES":
            flat: Any = [
                x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in data.reshape(-1)
            ]
        else:
            flat = data.reshape(-1)
        doc: dict[str, Any] = {"name": t.name, "shape": t.shape, "datatype": t.datatype}
        doc["data"] = flat
        if t.parameters:
            doc["parameters"] = t.parameters
        inputs.append(doc)
    body: dict[str, Any] = {"inputs": inputs}
    if request.id:
        body["id"] = request.id
    if request.parameters:
        body["parameters"] = request.parameters
    if request.outputs:
        body["outputs"] = [{"name": o.name, "parameters": o.parameters} for o in request.outputs]
    return body


class PredictorClient:
    """Calls the predictor of a transformer over REST (V1/V2) or gRPC (V2)."""

    def __init__(
        self, host: str, protocol: str = "v1", use_ssl: bool = False, timeout: float = 600.0
    ) -> None:
        if protocol not in PREDICTOR_PROTOCOLS:
            raise InvalidInputError(
                f"--predictor_protocol {protocol!r} is not one of {', '.join(PREDICTOR_PROTOCOLS)}"
            )
        self.host = host
        self.protocol = protocol
        self.use_ssl = use_ssl
        self.timeout = timeout
        self.tracing = mode_from_env()
        self._http: Any = None
        self._channel: Any = None
        self._stub: Any = None

    async def predict(self, model_name: str, payload: Any, headers: dict[str, str]) -> Any:
        # the transformer's call is a child of the request it serves (W3C Trace Context)
        trace = self._trace_headers(headers)
        if self.protocol == "grpc-v2":
            return await self._grpc(model_name, payload, tuple(trace.items()))
        import httpx

        self._client()
        if self.protocol == "v1":
            path = f"/v1/models/{model_name}:predict"
            body = payload
        else:
            path = f"/v2/models/{model_name}/infer"
            body = _v2_json(payload) if isinstance(payload, InferRequest) else payload
        try:
            reply = await self._http.post(
                path,
                content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
                headers={"content-type": "application/json", **trace},
            )
        except httpx.HTTPError as exc:
            raise PredictorError(
                f"predictor {self.host} is unreachable ({type(exc).__name__}: {exc})",
                503,
                "UNAVAILABLE",
            ) from exc
        if reply.status_code >= 400:
            try:
                message = reply.json().get("error", reply.text)
            except ValueError:
                message = reply.text
            raise PredictorError(
                f"predictor {self.host} answered {reply.status_code}: {message}",
                reply.status_code,
                _HTTP_TO_GRPC.get(reply.status_code, "UNAVAILABLE"),
            )
        return reply.json()

    def _client(self) -> Any:
        import httpx

        if self._http is None:
            scheme = "https" if self.use_ssl else "http"
            self._http = httpx.AsyncClient(base_url=f"{scheme}://{self.host}", timeout=self.timeout)
        return self._http

    async def forward(self, path: str, body: bytes, headers: dict[str, str]) -> ForwardedReply:
        """POST ``body`` to the predictor's ``path`` unchanged; a server-sent-event answer
        streams back as it comes."""
        import httpx

        if self.protocol == "grpc-v2":
            raise InvalidInputError(
                f"{path} is passed through to the predictor over REST, but "
                "--predictor_protocol is grpc-v2; use v1 or v2 with the predictor's HTTP port"
            )
        http = self._client()
        request = http.build_request(
            "POST",
            path,
            content=body,
            headers={"content-type": "application/json", **self._trace_headers(headers)},
        )
        try:
            reply = await http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise PredictorError(
                f"predictor {self.host} is unreachable ({type(exc).__name__}: {exc})",
                503,
                "UNAVAILABLE",
            ) from exc
        content_type = reply.headers.get("content-type", "application/json")
        if reply.status_code == 200 and content_type.startswith("text/event-stream"):

            async def chunks() -> AsyncGenerator[bytes, None]:
                try:
                    async for chunk in reply.aiter_raw():
                        yield chunk
                finally:
                    await reply.aclose()  # the predictor sees its client go: it stops

            return ForwardedReply(200, content_type, chunks=chunks())
        try:
            data = await reply.aread()
        finally:
            await reply.aclose()
        return ForwardedReply(reply.status_code, content_type, data)

    def _trace_headers(self, headers: dict[str, str]) -> dict[str, str]:
        if self.tracing == "off":
            passed = {k: v for k, v in headers.items() if k.lower() in _TRACE_HEADERS}
            return passed
        incoming = next((v for k, v in headers.items() if k.lower() == "traceparent"), None)
        span, _ = child(incoming)
        out = {"traceparent": span.header()}
        state = next((v for k, v in headers.items() if k.lower() == "tracestate"), "")
        if state:
            out["tracestate"] = state
        return out

    async def _grpc(
        self, model_name: str, payload: Any, metadata: tuple[tuple[str, str], ...] = ()
    ) -> InferResponse:
        import grpc

        from wonderland.inference._generated import grpc_predict_v2_pb2 as pb
        from wonderland.inference._generated import grpc_predict_v2_pb2_grpc as pb_grpc
        from wonderland.inference.codec_grpc import params_to_pb
        from wonderland.inference.codec_rest import decode_bytes_tensor, encode_bytes_tensor
        from wonderland.inference.types import numpy_dtype

        if not isinstance(payload, InferRequest):
            raise InvalidInputError("a grpc-v2 predictor takes a V2 request; use /v2 or gRPC")
        if self._stub is None:
            if self.use_ssl:
                self._channel = grpc.aio.secure_channel(self.host, grpc.ssl_channel_credentials())
            else:
                self._channel = grpc.aio.insecure_channel(self.host)
            self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)  # type: ignore[no-untyped-call]
        req = pb.ModelInferRequest(model_name=model_name, id=payload.id or "")
        if payload.parameters:
            params_to_pb(req.parameters, payload.parameters)
        for t in payload.inputs:
            req.inputs.add(name=t.name, datatype=t.datatype, shape=t.shape)
            if t.datatype == "BYTES":
                req.raw_input_contents.append(encode_bytes_tensor(t.data))
            else:
                req.raw_input_contents.append(np.ascontiguousarray(t.data).tobytes())
        for o in payload.outputs or []:
            req.outputs.add(name=o.name)
        try:
            reply = await self._stub.ModelInfer(req, timeout=self.timeout, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
            status = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404}.get(code, 503)
            raise PredictorError(
                f"predictor {self.host} answered {code}: {exc.details()}", status, code
            ) from exc
        outputs = []
        for i, o in enumerate(reply.outputs):
            shape = list(o.shape)
            if i < len(reply.raw_output_contents):
                raw = reply.raw_output_contents[i]
                if o.datatype == "BYTES":
                    arr = np.empty(int(np.prod(shape)), dtype=object)
                    arr[:] = decode_bytes_tensor(raw, arr.size, f"predictor output {o.name}")
                    arr = arr.reshape(shape)
                else:
                    arr = np.frombuffer(raw, dtype=numpy_dtype(o.datatype)).reshape(shape)
            else:
                field = o.contents.ListFields()
                values = list(field[0][1]) if field else []
                dtype = None if o.datatype == "BYTES" else numpy_dtype(o.datatype)
                arr = np.asarray(values, dtype=dtype if values else None).reshape(shape)
            outputs.append(InferOutput(o.name, shape, o.datatype, arr))
        return InferResponse(model_name, outputs, reply.id or None)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._channel is not None:
            await self._channel.close()
