"""The gateway data plane against real replicas (uvicorn apps on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from _support.daemon import free_port, wait_until
from _support.servers import asgi_replica

from wonderland.gateway import GatewayServer, HostRoute, RoutingTable
from wonderland.gateway.limits import GatewayLimits
from wonderland.tracing.context import parse_traceparent

Scope = dict[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


async def _send_json(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


def echo_app(label: str) -> App:
    """Answers with its label, the request headers and the body it got."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        path = scope["path"]
        if path.startswith("/sleep/"):
            await asyncio.sleep(float(path.split("/")[2]))
        if path.startswith("/stream"):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(4):
                await send({"type": "http.response.body", "body": b"x", "more_body": True})
                await asyncio.sleep(0.4)
            await send({"type": "http.response.body", "body": b"end"})
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        import json

        out = json.dumps({"label": label, "headers": headers, "body": body.decode()})
        await _send_json(send, 200, out.encode())

    return app


@contextlib.asynccontextmanager
async def gateway(table: RoutingTable) -> AsyncIterator[str]:
    gw = GatewayServer(table, port=0)
    await gw.start()
    try:
        yield f"http://127.0.0.1:{gw.port}"
    finally:
        await gw.stop()


def simple_route(table: RoutingTable, split: list[tuple[str, int]], tags: dict[str, str]) -> None:
    targets = [(table.revision("default", rev), pct) for rev, pct in split]
    tag_targets = {tag: table.revision("default", rev) for tag, rev in tags.items()}
    hosts = {
        "hello.default.127.0.0.1.sslip.io": HostRoute("default/hello", targets, tag_targets),
        "hello.default.svc.cluster.local": HostRoute("default/hello", targets, tag_targets),
    }
    for tag, target in tag_targets.items():
        hosts[f"{tag}-hello.default.127.0.0.1.sslip.io"] = HostRoute(
            "default/hello", [(target, 100)]
        )
    table.set_route("default/hello", hosts)


async def test_host_tag_and_header_routing_with_forwarded_headers() -> None:
    table = RoutingTable()
    async with asgi_replica(echo_app("one")) as p1, asgi_replica(echo_app("two")) as p2:
        table.revision("default", "hello-00001").set_endpoints([("127.0.0.1", p1, "r1")])
        table.revision("default", "hello-00002").set_endpoints([("127.0.0.1", p2, "r2")])
        simple_route(
            table, [("hello-00001", 100)], {"current": "hello-00001", "next": "hello-00002"}
        )
        async with gateway(table) as url, httpx.AsyncClient(base_url=url) as client:
            host = "hello.default.127.0.0.1.sslip.io"
            r = await client.get(
                "/", headers={"Host": host, "traceparent": "00-abc-def-01", "X-User": "kept"}
            )
            data = r.json()
            assert r.status_code == 200 and data["label"] == "one"
            h = data["headers"]
            assert h["host"] == host
            assert h["x-user"] == "kept"
            # a malformed traceparent starts a new trace (W3C Trace Context)
            assert h["traceparent"] != "00-abc-def-01"
            assert parse_traceparent(h["traceparent"]) is not None
            assert h["x-forwarded-for"] == "127.0.0.1"
            assert h["x-forwarded-proto"] == "http"
            assert h["forwarded"].startswith("for=127.0.0.1;proto=http")
            r = await client.get("/", headers={"Host": "next-hello.default.127.0.0.1.sslip.io"})
            assert r.json()["label"] == "two"
            r = await client.get("/", headers={"Host": host, "Knative-Serving-Tag": "next"})
            assert r.json()["label"] == "two"
            assert "knative-serving-tag" not in r.json()["headers"]
            r = await client.get("/", headers={"Host": host, "Knative-Serving-Tag": "nope"})
            assert r.status_code == 404
            r = await client.get("/", headers={"Host": "other.default.127.0.0.1.sslip.io"})
            assert r.status_code == 404 and "other.default" in r.text
            r = await client.post("/", headers={"Host": host + ":8080"}, content=b"payload")
            assert r.json()["body"] == "payload"

            async def chunks() -> AsyncIterator[bytes]:
                yield b"a" * 10
                yield b"b" * 10

            r = await client.post("/", headers={"Host": host}, content=chunks())
            assert r.json()["body"] == "a" * 10 + "b" * 10
        # absolute-form requests: a replica reaching a cluster-local URL through the proxy
        async with gateway(table) as url, httpx.AsyncClient(proxy=url) as client:
            r = await client.get("http://hello.default.svc.cluster.local/x")
            assert r.status_code == 200 and r.json()["label"] == "one"
            assert r.json()["headers"]["host"] == "hello.default.svc.cluster.local"


async def test_weighted_split_reaches_both_revisions() -> None:
    table = RoutingTable()
    async with asgi_replica(echo_app("blue")) as p1, asgi_replica(echo_app("green")) as p2:
        table.revision("default", "hello-00001").set_endpoints([("127.0.0.1", p1, "r1")])
        table.revision("default", "hello-00002").set_endpoints([("127.0.0.1", p2, "r2")])
        simple_route(table, [("hello-00001", 50), ("hello-00002", 50)], {})
        async with gateway(table) as url, httpx.AsyncClient(base_url=url) as client:
            host = {"Host": "hello.default.127.0.0.1.sslip.io"}
            labels = [(await client.get("/", headers=host)).json()["label"] for _ in range(200)]
        assert 60 <= labels.count("blue") <= 140
        assert labels.count("blue") + labels.count("green") == 200


async def test_container_concurrency_one_serialises_requests() -> None:
    active = 0
    overlaps = 0

    async def single(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal active, overlaps
        active += 1
        if active > 1:
            overlaps += 1
        await asyncio.sleep(0.05)
        active -= 1
        await _send_json(send, 500 if overlaps else 200, b"ok")

    table = RoutingTable()
    async with asgi_replica(single) as port:
        target = table.revision("default", "hello-00001")
        target.container_concurrency = 1
        target.set_endpoints([("127.0.0.1", port, "r1")])
        simple_route(table, [("hello-00001", 100)], {})
        async with gateway(table) as url:
            clients = [httpx.AsyncClient(base_url=url) for _ in range(5)]
            host = {"Host": "hello.default.127.0.0.1.sslip.io"}
            results = await asyncio.gather(*(c.get("/", headers=host) for c in clients * 2))
            for c in clients:
                await c.aclose()
    assert [r.status_code for r in results] == [200] * 10
    assert overlaps == 0


async def test_timeout_answers_504_only_when_the_first_byte_is_late() -> None:
    table = RoutingTable()
    async with asgi_replica(echo_app("slow")) as port:
        target = table.revision("default", "hello-00001")
        target.timeout = 1.0
        target.set_endpoints([("127.0.0.1", port, "r1")])
        simple_route(table, [("hello-00001", 100)], {})
        async with gateway(table) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            host = {"Host": "hello.default.127.0.0.1.sslip.io"}
            assert (await client.get("/sleep/0.2", headers=host)).status_code == 200
            late = await client.get("/sleep/2.5", headers=host)
            assert late.status_code == 504 and "timeoutSeconds" in late.text
            streamed = await client.get("/stream", headers=host)  # 1.6 s in total
            assert streamed.status_code == 200 and streamed.text == "xxxxend"
            assert (await client.get("/", headers=host)).status_code == 200


async def test_activator_holds_requests_until_a_replica_is_ready() -> None:
    table = RoutingTable()
    poked: list[str] = []
    target = table.revision("default", "hello-00001")
    target.on_demand = lambda t: poked.append(t.key)
    simple_route(table, [("hello-00001", 100)], {})
    async with gateway(table) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        host = {"Host": "hello.default.127.0.0.1.sslip.io"}
        pending = asyncio.gather(*(client.get("/", headers=host) for _ in range(3)))
        await wait_until(lambda: len(target.waiters) == 3, 30, "3 held requests")
        assert poked
        async with asgi_replica(echo_app("woke")) as port:
            target.set_endpoints([("127.0.0.1", port, "r1")])
            results = await pending
            metrics = await client.get("/metrics")
    assert [r.json()["label"] for r in results] == ["woke"] * 3
    assert "faas_init_duration_seconds_count" in metrics.text


async def test_dead_replica_is_skipped_and_requests_retried() -> None:
    table = RoutingTable()
    dead = free_port()
    async with asgi_replica(echo_app("alive")) as port:
        target = table.revision("default", "hello-00001")
        target.set_endpoints([("127.0.0.1", dead, "gone"), ("127.0.0.1", port, "r1")])
        simple_route(table, [("hello-00001", 100)], {})
        async with gateway(table) as url, httpx.AsyncClient(base_url=url) as client:
            host = {"Host": "hello.default.127.0.0.1.sslip.io"}
            results = [await client.get("/", headers=host) for _ in range(10)]
    assert all(r.status_code == 200 for r in results)


@pytest.mark.parametrize("method", ["HEAD", "GET"])
async def test_keep_alive_and_head(method: str) -> None:
    table = RoutingTable()
    async with asgi_replica(echo_app("k")) as port:
        table.revision("default", "hello-00001").set_endpoints([("127.0.0.1", port, "r1")])
        simple_route(table, [("hello-00001", 100)], {})
        async with gateway(table) as url:
            gw_port = int(url.rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
            req = f"{method} / HTTP/1.1\r\nHost: hello.default.127.0.0.1.sslip.io\r\n\r\n".encode()
            for _ in range(3):
                writer.write(req)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                assert head.startswith(b"HTTP/1.1 200")
                if method == "GET":
                    # uvicorn frames this body with chunked encoding
                    await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 10)
            writer.close()


async def test_idle_timeout_cuts_a_stalled_stream() -> None:
    async def stall(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"start", "more_body": True})
        if scope["path"] == "/stall":
            await asyncio.sleep(5)
        else:
            for _ in range(3):
                await asyncio.sleep(0.3)
                await send({"type": "http.response.body", "body": b".", "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})

    table = RoutingTable()
    async with asgi_replica(stall) as port:
        target = table.revision("default", "hello-00001")
        target.idle_timeout = 1.0
        target.set_endpoints([("127.0.0.1", port, "r1")])
        simple_route(table, [("hello-00001", 100)], {})
        async with gateway(table) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            host = {"Host": "hello.default.127.0.0.1.sslip.io"}
            ok = await client.get("/steady", headers=host)  # chunks every 0.3 s: never idle
            assert ok.text == "start...end"
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get("/stall", headers=host)


async def test_websocket_upgrade_is_tunnelled() -> None:
    import base64
    import os as _os

    async def ws_echo(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await _send_json(send, 200, b"plain")
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": "echo:" + msg.get("text", "")})

    def frame(text: str) -> bytes:
        payload = text.encode()
        mask = _os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bytes([0x81, 0x80 | len(payload)]) + mask + masked

    table = RoutingTable()
    port = free_port()
    config = uvicorn.Config(
        ws_echo,
        host="127.0.0.1",
        port=port,
        log_level="error",
        lifespan="off",
        ws="websockets-sansio",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started or task.done(), what="the WebSocket replica")
        if task.done():
            task.result()  # the replica failed to start: say why
        target = table.revision("default", "hello-00001")
        target.set_endpoints([("127.0.0.1", port, "r1")])
        simple_route(table, [("hello-00001", 100)], {})
        async with gateway(table) as url:
            gw_port = int(url.rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
            key = base64.b64encode(_os.urandom(16)).decode()
            writer.write(
                (
                    "GET /ws HTTP/1.1\r\nHost: hello.default.127.0.0.1.sslip.io\r\n"
                    "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 101")
            assert target.in_flight == 1  # an open WebSocket counts as a request
            for word in ("one", "two"):
                writer.write(frame(word))
                reply = await asyncio.wait_for(reader.readexactly(2), 10)
                body = await reader.readexactly(reply[1] & 0x7F)
                assert body == f"echo:{word}".encode()
            writer.close()
            await wait_until(lambda: target.in_flight == 0)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def test_a_replica_dying_between_head_and_body_is_retried() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.01)  # the head reaches the gateway before the reset
        writer.transport.abort()  # dies before the body, as under kill -9

    broken = await asyncio.start_server(half, "127.0.0.1", 0)
    broken_port = broken.sockets[0].getsockname()[1]
    table = RoutingTable()
    try:
        async with asgi_replica(echo_app("healthy")) as port:
            target = table.revision("default", "hello-00001")
            target.set_endpoints([("127.0.0.1", broken_port, "bad"), ("127.0.0.1", port, "ok")])
            simple_route(table, [("hello-00001", 100)], {})
            async with gateway(table) as url, httpx.AsyncClient(base_url=url) as client:
                host = {"Host": "hello.default.127.0.0.1.sslip.io"}
                results = [await client.get("/", headers=host) for _ in range(10)]
        assert [r.json()["label"] for r in results] == ["healthy"] * 10
    finally:
        broken.close()


async def test_http2_client_reaches_an_http1_revision() -> None:
    table = RoutingTable()
    async with asgi_replica(echo_app("h1")) as port:
        table.revision("default", "hello-00001").set_endpoints([("127.0.0.1", port, "r1")])
        simple_route(table, [("hello-00001", 100)], {})
        async with (
            gateway(table) as url,
            httpx.AsyncClient(base_url=url, http1=False, http2=True, timeout=30) as client,
        ):
            host = {"Host": "hello.default.127.0.0.1.sslip.io"}
            results = await asyncio.gather(
                *(client.post("/", headers=host, content=f"body{i}".encode()) for i in range(5))
            )
    for i, r in enumerate(results):
        assert r.http_version == "HTTP/2" and r.status_code == 200
        data = r.json()
        assert data["label"] == "h1" and data["body"] == f"body{i}"
        assert data["headers"]["x-forwarded-for"] == "127.0.0.1"


async def test_forwarded_host_with_a_port_is_quoted() -> None:
    table = RoutingTable()
    async with asgi_replica(echo_app("one")) as port:
        table.revision("default", "hello-00001").set_endpoints([("127.0.0.1", port, "r1")])
        simple_route(table, [("hello-00001", 100)], {})
        async with gateway(table) as url, httpx.AsyncClient(base_url=url) as client:
            host = "hello.default.127.0.0.1.sslip.io:8080"
            r = await client.get("/", headers={"Host": host, "Forwarded": "for=10.0.0.1"})
    forwarded = r.json()["headers"]["forwarded"]
    assert forwarded == f'for=10.0.0.1, for=127.0.0.1;proto=http;host="{host}"'


async def _echo_pieces(scope: Scope, receive: Any, send: Any) -> None:
    """Answers each piece of the request body as it arrives, as an SSE event."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
    )
    while True:
        msg = await receive()
        if msg.get("body"):
            event = b"data: " + msg["body"] + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": True})
        if not msg.get("more_body"):
            break
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


async def _read_until(reader: asyncio.StreamReader, got: bytes, marker: bytes) -> bytes:
    while marker not in got:
        more = await asyncio.wait_for(reader.read(4096), 10)
        assert more, f"the gateway closed the connection before {marker!r}; got {got!r}"
        got += more
    return got


@pytest.mark.parametrize(("framing", "at_zero"), [("chunked", False), ("length", True)])
async def test_a_request_body_streams_to_the_replica_piece_by_piece(
    framing: str, at_zero: bool
) -> None:
    """Each piece of the body reaches the replica, and its answer the client, before the
    client sends the next: neither body is held whole (a chunked upload, and a
    content-length one that the activator holds first while the revision is at zero).
    Once the replica answers, the body may pause longer than a slow client's limit."""
    pieces = [b"one", b"two", b"three"]
    table = RoutingTable()
    target = table.revision("default", "hello-00001")
    simple_route(table, [("hello-00001", 100)], {})
    gw = GatewayServer(table, port=0, limits=GatewayLimits(header_timeout=0.5))
    await gw.start()
    url = f"http://127.0.0.1:{gw.port}"
    async with asgi_replica(_echo_pieces) as port, contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(gw.stop)
        if not at_zero:
            target.set_endpoints([("127.0.0.1", port, "r1")])
        reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
        framing_header = (
            b"Transfer-Encoding: chunked"
            if framing == "chunked"
            else b"Content-Length: %d" % sum(map(len, pieces))
        )
        writer.write(
            b"POST /up HTTP/1.1\r\nHost: hello.default.127.0.0.1.sslip.io\r\n"
            + framing_header
            + b"\r\n\r\n"
        )
        got = b""
        for i, piece in enumerate(pieces):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if framing == "chunked" else piece)
            if i == 0 and at_zero:
                await wait_until(lambda: len(target.waiters) == 1, 10)
                target.set_endpoints([("127.0.0.1", port, "r1")])
            got = await _read_until(reader, got, b"data: " + piece + b"\n\n")
            await asyncio.sleep(0.8 if i == 1 else 0)  # past header_timeout
        if framing == "chunked":
            writer.write(b"0\r\n\r\n")
        got = await _read_until(reader, got, b"data: [DONE]")
        # the connection goes on: a small request whose body comes with its head
        writer.write(
            b"POST /up HTTP/1.1\r\nHost: hello.default.127.0.0.1.sslip.io\r\n"
            b"Content-Length: 4\r\n\r\nfour"
        )
        more = await _read_until(reader, b"", b"data: [DONE]")
        writer.close()
    assert got.startswith(b"HTTP/1.1 200") and b"text/event-stream" in got
    assert more.startswith(b"HTTP/1.1 200") and b"data: four\n\n" in more
