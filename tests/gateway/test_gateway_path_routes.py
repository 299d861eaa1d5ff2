"""Path routes on a host (a notebook at /notebook/<ns>/<name>/ on the console's host): only
a signed-in session passes, with the route's token instead of the client's Authorization;
a GET without one is sent to the sign-in page, anything else gets 401."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from _support.servers import asgi_replica

from wonderland.gateway import GatewayServer, HostRoute, RoutingTable
from wonderland.gateway.table import PathRoute, RevisionTarget

HOST = "console.127.0.0.1.sslip.io"


def app(label: str) -> Any:
    async def serve(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        body = json.dumps(
            {"label": label, "path": scope["path"], "auth": headers.get("authorization")}
        ).encode()
        length = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": length})
        await send({"type": "http.response.body", "body": body})

    return serve


@contextlib.asynccontextmanager
async def gateway(table: RoutingTable) -> AsyncIterator[int]:
    gw = GatewayServer(table, port=0)
    await gw.start()
    try:
        yield gw.port
    finally:
        await gw.stop()


async def test_a_path_route_needs_a_session_and_carries_its_token() -> None:
    table = RoutingTable()
    async with (
        asgi_replica(app("console")) as console_port,
        asgi_replica(app("notebook")) as notebook_port,
        gateway(table) as port,
    ):
        console = RevisionTarget("wonderland-system", "console")
        console.set_endpoints([("127.0.0.1", console_port, "console")])
        table.set_route("sys/console", {HOST: HostRoute("sys/console", [(console, 100)])})
        nb = RevisionTarget("default", "notebook-lab")
        nb.set_endpoints([("127.0.0.1", notebook_port, "lab-0")])
        allow = lambda cookie: "session=good" in cookie  # noqa: E731
        table.set_path_route(
            HOST, PathRoute("/notebook/default/lab/", nb, allow, [(b"Authorization", b"token s3")])
        )
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Host": HOST}, trust_env=False
        ) as client:
            signed = {"Cookie": "session=good", "Authorization": "Bearer mine"}
            r = await client.get("/notebook/default/lab/api/status", headers=signed)
            assert r.json() == {
                "label": "notebook",
                "path": "/notebook/default/lab/api/status",
                "auth": "token s3",
            }
            r = await client.get("/notebook/default/lab/api/status")
            assert r.status_code == 303
            assert r.headers["location"] == "/signin?next=/notebook/default/lab/api/status"
            r = await client.post("/notebook/default/lab/api/kernels", headers={"Cookie": "x=1"})
            assert r.status_code == 401
            # other paths of the host, and other notebooks, stay the console's
            for path in ("/", "/notebook/default/labs/", "/notebook/default/other/"):
                r = await client.get(path, headers=signed)
                assert r.json()["label"] == "console", path
            table.remove_path_route(HOST, "/notebook/default/lab/")
            r = await client.get("/notebook/default/lab/api/status", headers=signed)
            assert r.json()["label"] == "console" and table.paths == {}
