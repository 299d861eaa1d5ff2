"""A gRPC replica for the serving tests: /test.Echo/Echo answers with K_REVISION."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import grpc
from grpc import aio


async def echo(request: bytes, context: Any) -> bytes:
    return request + b"@" + os.environ["K_REVISION"].encode()


async def main() -> None:
    server = aio.server()
    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{os.environ['PORT']}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main())
