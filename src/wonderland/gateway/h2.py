"""HTTP/2 cleartext (prior knowledge) on the gateway, for revisions whose port is named
``h2c`` (Knative's rule), so gRPC services work with Host-based routing."""

from __future__ import annotations

import asyncio
from typing import cast

from wonderland.gateway.table import RoutingTable

__all__ = ["H2ClientConnection"]


class H2ClientConnection(asyncio.Protocol):
    """Placeholder until the h2c data path lands: refuses the connection politely."""

    def __init__(self, table: RoutingTable) -> None:
        self.table = table
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            # GOAWAY frame, error HTTP_1_1_REQUIRED (0xd)
            frame = b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + b"\x00\x00\x00\x00\x00\x00\x00\x0d"
            self.transport.write(frame)
            self.transport.close()
