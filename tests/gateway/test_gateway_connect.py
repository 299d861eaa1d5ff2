"""HTTP CONNECT on the gateway: how replicas' gRPC clients (which honour ``http_proxy``)
reach cluster-local services. Tunnels open only to hosts the gateway routes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from _support.daemon import free_port, wait_until
from _support.servers import asgi_replica
from grpc import aio

from wonderland.gateway import GatewayServer, HostRoute, RoutingTable
from wonderland.runtime.env import proxy_env

LOCAL = "hello.default.svc.cluster.local"
EXTERNAL = "hello.default.127.0.0.1.sslip.io"
GRPC_LOCAL = "grpc.default.svc.cluster.local"


def label_app(label: str) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        body = json.dumps({"label": label, "host": headers.get("host", "")}).encode()
        length = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": length})
        await send({"type": "http.response.body", "body": body})

    return app


@contextlib.asynccontextmanager
async def gateway(table: RoutingTable) -> AsyncIterator[int]:
    gw = GatewayServer(table, port=0)
    await gw.start()
    try:
        yield gw.port
    finally:
        await gw.stop()


async def echo(request: bytes, context: Any) -> bytes:
    meta = dict(context.invocation_metadata())
    return request + b"|" + meta.get("x-forwarded-for", "").encode()


@contextlib.asynccontextmanager
async def grpc_replica() -> AsyncIterator[int]:
    port = free_port()
    server = aio.server()
    handlers = {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


def split_routes(table: RoutingTable, labels: dict[str, int]) -> None:
    """``hello`` split across revisions ``hello-<label>``, on its cluster-local and
    external names."""
    targets = [(table.revision("default", f"hello-{rev}"), pct) for rev, pct in labels.items()]
    route = HostRoute("default/hello", targets)
    hosts = {LOCAL: route, "hello.default.svc": route, EXTERNAL: route}
    table.set_route("default/hello", hosts)


def grpc_route(table: RoutingTable) -> Any:
    target = table.revision("default", "grpc-00001")
    target.h2c = True
    route = HostRoute("default/grpc", [(target, 100)])
    table.set_route("default/grpc", {GRPC_LOCAL: route, "grpc.default.svc": route})
    return target


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await read_head(reader)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    body = await asyncio.wait_for(reader.readexactly(length), 30)
    return head, body


async def connect(port: int, target: str) -> tuple[bytes, Any, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = await read_head(reader)
    return head, reader, writer


async def test_connect_tunnels_http1_with_host_routing_and_traffic_split() -> None:
    table = RoutingTable()
    async with asgi_replica(label_app("a")) as port_a, asgi_replica(label_app("b")) as port_b:
        table.revision("default", "hello-a").set_endpoints([("127.0.0.1", port_a, "ra")])
        table.revision("default", "hello-b").set_endpoints([("127.0.0.1", port_b, "rb")])
        split_routes(table, {"a": 50, "b": 50})
        async with gateway(table) as gw:
            head, reader, writer = await connect(gw, f"{LOCAL}:80")
            try:
                assert head.startswith(b"HTTP/1.1 200 ")
                labels = set()
                for _ in range(24):  # keep-alive requests inside one tunnel
                    writer.write(f"GET / HTTP/1.1\r\nHost: {LOCAL}\r\n\r\n".encode())
                    status, body = await read_response(reader)
                    assert status.startswith(b"HTTP/1.1 200 ")
                    labels.add(json.loads(body)["label"])
                assert labels == {"a", "b"}  # the split applies inside the tunnel
                # a request without Host goes to the CONNECT target
                writer.write(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                status, body = await read_response(reader)
                assert status.startswith(b"HTTP/1.1 200 ")
                assert json.loads(body)["host"] == f"{LOCAL}:80"
            finally:
                writer.close()
            # the external name and the short .svc name open tunnels too
            for target in (f"{EXTERNAL}:80", "hello.default.svc:8080"):
                head, reader, writer = await connect(gw, target)
                try:
                    assert head.startswith(b"HTTP/1.1 200 "), head
                    writer.write(f"GET / HTTP/1.1\r\nHost: {EXTERNAL}\r\n\r\n".encode())
                    status, _ = await read_response(reader)
                    assert status.startswith(b"HTTP/1.1 200 ")
                finally:
                    writer.close()


async def test_grpc_client_tunnels_h2c_through_the_gateway_and_the_activator() -> None:
    table = RoutingTable()
    target = grpc_route(table)
    async with gateway(table) as gw, grpc_replica() as grpc_port:
        options = [("grpc.http_proxy", f"http://127.0.0.1:{gw}")]
        async with aio.insecure_channel(f"{GRPC_LOCAL}:80", options=options) as channel:
            unary = channel.unary_unary("/test.Echo/Echo")
            # the revision is at zero: calls wait in the activator until a replica is ready
            pending = asyncio.gather(*(unary(str(i).encode(), timeout=60) for i in range(5)))
            await wait_until(lambda: len(target.waiters) == 5, 30, "5 calls held")
            target.set_endpoints([("127.0.0.1", grpc_port, "r1")])
            replies = await pending
            assert [r.split(b"|")[0] for r in replies] == [str(i).encode() for i in range(5)]
            assert replies[0].split(b"|")[1] == b"127.0.0.1"  # X-Forwarded-For was added
            assert await unary(b"again", timeout=30) == b"again|127.0.0.1"


async def test_replica_env_sends_grpc_to_the_gateway_and_loopback_direct(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = RoutingTable()
    target = grpc_route(table)
    async with gateway(table) as gw, grpc_replica() as grpc_port:
        target.set_endpoints([("127.0.0.1", grpc_port, "r1")])
        env = proxy_env(f"http://127.0.0.1:{gw}")
        for name in ("grpc_proxy", "https_proxy", "http_proxy", "no_grpc_proxy", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.upper(), raising=False)
            if name in env:
                monkeypatch.setenv(name, env[name])
        # a cluster-local name (no DNS for it) works through the gateway's CONNECT
        async with aio.insecure_channel(f"{GRPC_LOCAL}:80") as channel:
            unary = channel.unary_unary("/test.Echo/Echo")
            assert await unary(b"via-gateway", timeout=30) == b"via-gateway|127.0.0.1"
        # loopback stays direct: through the gateway it would be refused (403)
        async with aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            unary = channel.unary_unary("/test.Echo/Echo")
            assert await unary(b"direct", timeout=30) == b"direct|"


async def test_connect_to_a_host_the_gateway_does_not_route_is_403() -> None:
    table = RoutingTable()
    split_routes(table, {"a": 100})
    async with gateway(table) as gw:
        for target in ("example.com:443", "127.0.0.1:22", "other.default.svc.cluster.local:80"):
            head, reader, writer = await connect(gw, target)
            try:
                assert head.startswith(b"HTTP/1.1 403 "), head
                body = await asyncio.wait_for(reader.read(), 30)  # then the gateway closes
                assert target.encode() in body and b"routes" in body
            finally:
                writer.close()
        # grpc sees the refusal as an unavailable channel
        options = [("grpc.http_proxy", f"http://127.0.0.1:{gw}")]
        async with aio.insecure_channel("nowhere.default.svc:80", options=options) as channel:
            with pytest.raises(aio.AioRpcError) as err:
                await channel.unary_unary("/test.Echo/Echo")(b"x", timeout=30)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    "target", [LOCAL, "/index.html", f"{LOCAL}:http", f"{LOCAL}:0", ":80", "a@b.svc:80"]
)
async def test_malformed_connect_is_400(target: str) -> None:
    table = RoutingTable()
    split_routes(table, {"a": 100})
    async with gateway(table) as gw:
        head, reader, writer = await connect(gw, target)
        try:
            assert head.startswith(b"HTTP/1.1 400 "), head
            body = await asyncio.wait_for(reader.read(), 30)
            assert b"host:port" in body
        finally:
            writer.close()
