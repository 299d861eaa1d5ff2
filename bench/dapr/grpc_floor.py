"""The floor of gRPC in Python: a no-op ``Dapr.SetMetadata`` server with nothing behind it.

    python bench/dapr/grpc_floor.py aio|sync|health PORT

Run by run.py next to the sidecar so the same client, pacing and run measure the
cost of grpcio alone (a ``grpc.aio`` server as the sidecar uses, and a sync
``grpc.server`` with a thread pool). ``health`` serves ``grpc.health.v1.Health/Check``
(always SERVING) from ``wonderland.h2grpc``, the sidecar's server, so the grpc-go client
of gofloor.py can call it next to a grpc-go server.
"""

from __future__ import annotations

import sys
from concurrent import futures
from typing import Any

import grpc
from dapr.proto.runtime.v1 import dapr_pb2_grpc
from google.protobuf import empty_pb2

OPTIONS = [("grpc.so_reuseport", 0)]


def serve_sync(port: int) -> None:
    class Servicer(dapr_pb2_grpc.DaprServicer):  # type: ignore[misc]
        def SetMetadata(self, request: Any, context: Any) -> Any:
            return empty_pb2.Empty()

    server = grpc.server(futures.ThreadPoolExecutor(4), options=OPTIONS)
    dapr_pb2_grpc.add_DaprServicer_to_server(Servicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


async def serve_aio(port: int) -> None:
    class Servicer(dapr_pb2_grpc.DaprServicer):  # type: ignore[misc]
        async def SetMetadata(self, request: Any, context: Any) -> Any:
            return empty_pb2.Empty()

    server = grpc.aio.server(options=OPTIONS)
    dapr_pb2_grpc.add_DaprServicer_to_server(Servicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def serve_health(port: int) -> None:
    import asyncio

    from wonderland.h2grpc import GrpcServer, Method

    class Serving:
        @staticmethod
        def SerializeToString() -> bytes:
            return b"\x08\x01"  # HealthCheckResponse{status: SERVING}

    async def check(request: Any, context: Any) -> Any:
        return Serving

    method = Method("Check", check, empty_pb2.Empty, False, False)
    server = GrpcServer({"/grpc.health.v1.Health/Check": method})
    await server.start("127.0.0.1", port)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "health":
        import uvloop

        uvloop.run(serve_health(port))
    elif kind == "sync":
        serve_sync(port)
    else:
        import uvloop

        uvloop.run(serve_aio(port))
