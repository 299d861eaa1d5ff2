"""Kept-alive HTTP/1.1 connections from the gateway to replicas.

Response bytes go straight to the client as they arrive; they are parsed only to find
where each response ends (so the connection can be reused) and to notice a protocol
switch (101) that turns the pair into a tunnel.
"""

from __future__ import annotations

import asyncio
from typing import cast

import httptools

from wonderland.gateway.exchange import H1Client, H1Request
from wonderland.gateway.table import Endpoint

__all__ = ["HOLD_BACK", "UpstreamConnection"]

# How long the start of an unfinished response may be held back (see data_received).
HOLD_BACK = 0.05


class UpstreamConnection(asyncio.Protocol):
    """A kept-alive HTTP/1.1 connection to one replica (an ``H1Upstream``); response bytes
    go straight to the client, parsed only to find the end of each response."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.client: H1Client | None = None
        self.req: H1Request | None = None
        self.keep_alive = True
        self.done = False
        self.lost = False
        self.head_only = False
        self._says_close = False
        self.idle_since = 0.0
        self.tunneling = False
        self.held: bytes | None = None  # the start of a response not forwarded yet
        self.forwarded = False  # some of this response has reached the client
        self._flush_timer: asyncio.TimerHandle | None = None

    def usable(self) -> bool:
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    def start(self, client: H1Client, req: H1Request) -> None:
        self.client = client
        self.req = req
        self.done = False
        self.forwarded = False
        self.held = None
        self.head_only = req.method == b"HEAD"
        req.upstream = self
        assert self.transport is not None
        self.transport.write(req.head)
        if req.streaming:
            # the body so far, and from now on each piece as the client sends it
            self.transport.write(req.take_body())
            if not req.body_done:
                req.body_sink = self
        if client.paused:
            self.transport.pause_reading()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        client, req = self.client, self.req
        if self.tunneling:
            if client is not None and client.transport is not None and not client.closed:
                client.transport.write(data)
            return
        if client is None or req is None:
            self.close()
            return
        if not req.started:
            client.first_byte(req)
            if self.head_only:
                self._says_close = b"connection: close" in data.lower()
        elif req.target is not None and req.target.idle_timeout > 0:
            req.deadline = client.loop.time() + req.target.idle_timeout
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if req.upgrade and self.parser.get_status_code() == 101:
                self._forward(client, data)
                self.tunneling = True
                client.start_tunnel(req, self)
                return
            self.keep_alive = False
            self.done = True
        except httptools.HttpParserError:
            self.keep_alive = False
            self.done = True
        if self.done or self.forwarded or self.held is not None:
            self._forward(client, data)
        else:
            # The start of a response that is not complete yet is held back briefly: if the
            # replica dies now (kill -9 between head and body), nothing has reached the
            # client and the request can still be retried elsewhere.
            self.held = data
            self._flush_timer = client.loop.call_later(HOLD_BACK, self._flush)
        if self.done:
            self.client = None
            self.req = None
            client.response_done(req, self, self.keep_alive and not self.lost)

    def _forward(self, client: H1Client, data: bytes) -> None:
        transport = client.transport
        held = self.held
        if held is not None:
            self.held = None
            if self._flush_timer is not None:
                self._flush_timer.cancel()
                self._flush_timer = None
            data = held + data
        if transport is not None and not client.closed:
            transport.write(data)
        self.forwarded = True

    def _flush(self) -> None:
        self._flush_timer = None
        if self.held is not None and self.client is not None:
            self._forward(self.client, b"")

    def on_headers_complete(self) -> None:
        req = self.req
        if req is not None:
            req.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        if self.head_only:
            # A HEAD response may carry no framing; llhttp then calls it EOF-delimited.
            self.keep_alive = self.keep_alive or (
                self.parser.get_http_version() == "1.1" and not self._says_close
            )
            self.done = True
            self.parser = httptools.HttpResponseParser(self)

    def on_message_complete(self) -> None:
        self.done = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.tunneling:
            self.tunneling = False
            client = self.client
            self.client = None
            self.req = None
            if client is not None and client.tunnel is self:
                client.end_tunnel()
            return
        client, req = self.client, self.req
        self.client = None
        self.req = None
        if client is None or req is None or req.upstream is not self:
            return
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self.held = None
        if self.forwarded:
            # Part of the response is already with the client: end that connection.
            self.keep_alive = False
            client.response_done(req, self, False)
        else:
            if req.started and req.target is not None:
                req.started = False  # nothing reached the client: a retry starts afresh
                client.rearm(req)
            client.upstream_failed(req, sent=True)

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def send_body(self, req: H1Request) -> None:
        if self.transport is not None:
            self.transport.write(req.take_body())

    def pause_writing(self) -> None:
        # a replica slower to read a streamed request body than the client is to send it
        client = self.client
        if client is not None:
            client.hold_body(True)

    def resume_writing(self) -> None:
        client = self.client
        if client is not None:
            client.hold_body(False)

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.lost = True
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self.client = None
        self.req = None
        if self.transport is not None:
            self.transport.abort()
