"""gRPC over HTTP/2 on asyncio, for servicers written against grpcio's aio API."""

from __future__ import annotations

from wonderland.h2grpc.limits import H2Limits
from wonderland.h2grpc.server import GrpcServer, Method, service_methods
from wonderland.h2grpc.status import RpcAbort, ServicerContext, StatusCode

__all__ = [
    "GrpcServer",
    "H2Limits",
    "Method",
    "RpcAbort",
    "ServicerContext",
    "StatusCode",
    "service_methods",
]
