"""A transformer's call to its predictor continues the trace of the request it serves."""

from __future__ import annotations

import json
import textwrap
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from wonderland.tracing.context import parse_traceparent

from .conftest import run_server

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE}-00f067aa0ba902b7-01"

TRANSFORMER = textwrap.dedent(
    """
    class Passthrough:
        def __init__(self, name):
            self.name = name

        def preprocess(self, payload, headers=None):
            return payload
    """
)


class _Predictor(BaseHTTPRequestHandler):
    """A V1 predictor that answers with the trace headers it received."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        body = json.dumps(
            {"predictions": [self.headers.get("traceparent"), self.headers.get("tracestate")]}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def predictor() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Predictor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _predict(port: int, headers: dict[str, str]) -> list[str | None]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/models/t:predict",
        data=b'{"instances": [[1]]}',
        headers={"content-type": "application/json", **headers},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        got: list[str | None] = json.loads(reply.read())["predictions"]
        return got


def test_the_transformer_passes_the_trace_to_its_predictor(predictor: int, tmp_path: Path) -> None:
    d = tmp_path / "transformer"
    d.mkdir()
    (d / "model.py").write_text(TRANSFORMER)
    args = [
        "--model_name",
        "t",
        "--model_dir",
        str(d),
        "--predictor_host",
        f"127.0.0.1:{predictor}",
    ]
    with run_server(args, tmp_path) as server:
        seen, state = _predict(server.http_port, {"traceparent": INCOMING, "tracestate": "v=1"})
        got = parse_traceparent(seen)
        assert got is not None and got.trace_id == TRACE and got.parent_id != "00f067aa0ba902b7"
        assert state == "v=1"
        # a request with no (or a malformed) traceparent: the predictor sees a new trace
        for headers in ({}, {"traceparent": "00-junk"}):
            seen, _ = _predict(server.http_port, headers)
            fresh = parse_traceparent(seen)
            assert fresh is not None and fresh.trace_id != TRACE
