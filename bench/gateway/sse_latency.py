"""The gateway's added latency per streamed event (server-sent events, HTTP/1.1 chunked).

    python bench/gateway/sse_latency.py [--events 2000] [--interval-ms 1] [--rounds 3]

A source process answers one request with ``--events`` events, one chunk each, paced
``--interval-ms`` apart so that every event travels on its own; each event carries the
source's ``time.monotonic_ns()`` when it was written (the clock is system-wide). The client
reads the stream directly from the source and then through a gateway process routing a
Knative host to it, and records each event's one-way latency. The gateway's added
latency per event is the difference of the two distributions' percentiles. The peer, where
``nginx`` is installed (apt), is nginx ``proxy_pass`` to the same source with
``proxy_buffering off`` (what an SSE route behind nginx needs), one worker. Rounds
alternate direct, gateway and nginx, because the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "sse.default.127.0.0.1.sslip.io"

SOURCE = """
import asyncio, sys, time
EVENTS, INTERVAL = int(sys.argv[2]), float(sys.argv[3]) / 1000

async def handle(reader, writer):
    while (await reader.readline()) not in (b"\\r\\n", b""):
        pass
    writer.write(b"HTTP/1.1 200 OK\\r\\ncontent-type: text/event-stream\\r\\n"
                 b"transfer-encoding: chunked\\r\\nconnection: close\\r\\n\\r\\n")
    for _ in range(EVENTS):
        event = b"data: %d\\n\\n" % time.monotonic_ns()
        writer.write(b"%x\\r\\n%s\\r\\n" % (len(event), event))
        await writer.drain()
        await asyncio.sleep(INTERVAL)
    writer.write(b"0\\r\\n\\r\\n")
    await writer.drain()
    writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()

asyncio.run(main())
"""

GATEWAY = """
import asyncio, sys
from wonderland.gateway import GatewayServer, HostRoute, RoutingTable

async def main():
    table = RoutingTable()
    target = table.revision("default", "sse-00001")
    target.set_endpoints([("127.0.0.1", int(sys.argv[2]), "r1")])
    table.set_route("default/sse", {sys.argv[3]: HostRoute("default/sse", [(target, 100)])})
    gw = GatewayServer(table, port=int(sys.argv[1]))
    await gw.start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(code: str, *args: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != b"ready":
        raise SystemExit(f"{args}: did not start")
    return proc


def stream(port: int) -> list[float]:
    """One request; the one-way latency of every event, in microseconds."""
    out: list[float] = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(f"GET /events HTTP/1.1\r\nhost: {HOST}\r\n\r\n".encode())
        buf = b""
        while True:
            chunk = sock.recv(65536)
            now = time.monotonic_ns()
            if not chunk:
                break
            buf += chunk
            while True:
                start = buf.find(b"data: ")
                end = buf.find(b"\n\n", start)
                if start < 0 or end < 0:
                    break
                out.append((now - int(buf[start + 6 : end])) / 1000)
                buf = buf[end + 2 :]
            if buf.endswith(b"0\r\n\r\n"):
                break
    return out


def start_nginx(upstream_port: int, work: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    """nginx proxying to the source without buffering, or None where it is missing."""
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else ""
    )
    if not binary:
        return None
    port = _free_port()
    conf = work / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fcgi; uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  upstream source {{ server 127.0.0.1:{upstream_port}; keepalive 4; }}
  server {{
    listen 127.0.0.1:{port};
    tcp_nodelay on;
    location / {{
      proxy_pass http://source;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("nginx did not start") from None
            time.sleep(0.05)
    return proc, port


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--interval-ms", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    src_port, gw_port = _free_port(), _free_port()
    source = _start(SOURCE, str(src_port), str(args.events), str(args.interval_ms))
    gateway = _start(GATEWAY, str(gw_port), str(src_port), HOST)
    work = Path(tempfile.mkdtemp(prefix="sse-nginx-"))
    started = start_nginx(src_port, work)
    peer = started[0] if started is not None else None
    ports = {"direct": src_port, "gateway": gw_port}
    if started is not None:
        ports["nginx"] = started[1]
    try:
        for port in ports.values():
            stream(port)  # warm up the proxies' pools
        runs: dict[str, list[list[float]]] = {key: [] for key in ports}
        for _ in range(args.rounds):
            for key, port in ports.items():
                runs[key].append(stream(port))
    finally:
        for proc in (gateway, source, peer):
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.events} events, one every {args.interval_ms:g} ms; one-way latency in us")
    print("(+name: what the proxy adds to direct, per percentile)")
    print(f"{'':10}{'p50':>10}{'p90':>10}{'p99':>10}")
    rows = {}
    for key, per_round in runs.items():
        assert all(len(r) == args.events for r in per_round)
        rows[key] = [statistics.median(_pct(r, q) for r in per_round) for q in (50, 90, 99)]
        print(f"{key:10}" + "".join(f"{v:10.1f}" for v in rows[key]))
    for key in ports:
        if key != "direct":
            added = [g - d for g, d in zip(rows[key], rows["direct"], strict=True)]
            print(f"{'+' + key:10}" + "".join(f"{v:10.1f}" for v in added))
    if peer is None:
        print("(no nginx here: apt-get install nginx for the peer's row)")


if __name__ == "__main__":
    main()
