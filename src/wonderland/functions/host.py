"""The runtime entry point of a function replica: ``python -m wonderland.functions.host DIR``.

It validates ``DIR/func.yaml``, imports the function and serves it with uvicorn.
Addresses: ``LISTEN_ADDRESS`` (comma-separated ``host:port``, as func-python reads it),
else ``127.0.0.1:$PORT`` (the Knative runtime contract), else ``127.0.0.1:8080``.
SIGTERM and SIGINT shut down gracefully, which runs the function's ``stop()``.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from wonderland.errors import ConfigError, WonderlandError

__all__ = ["listen_addresses", "main", "serve"]

DEFAULT_ADDRESS = "127.0.0.1:8080"


def listen_addresses(env: Mapping[str, str]) -> list[tuple[str, int]]:
    """The (host, port) pairs to bind, from ``LISTEN_ADDRESS`` or ``PORT``."""
    raw = env.get("LISTEN_ADDRESS", "").strip()
    if not raw:
        port = env.get("PORT", "").strip()
        raw = f"127.0.0.1:{port}" if port else DEFAULT_ADDRESS
    out: list[tuple[str, int]] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        if "://" in item:
            raise ConfigError(
                f"LISTEN_ADDRESS={raw!r}: {item!r} is not supported; use host:port "
                "(e.g. 127.0.0.1:8080 or [::]:8080)"
            )
        host, sep, port_text = item.rpartition(":")
        if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ConfigError(
                f"LISTEN_ADDRESS/PORT: {item!r} is not host:port with a port 0-65535; "
                "set e.g. LISTEN_ADDRESS=127.0.0.1:8080"
            )
        out.append((host.strip("[]") or "127.0.0.1", int(port_text)))
    return out


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}; pick a free port "
            "(LISTEN_ADDRESS or PORT)"
        ) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(root: Path, env: Mapping[str, str] | None = None, invoke: str | None = None) -> int:
    """Load the function in ``root`` and serve it until a signal stops it.

    With ``invoke`` given (``func deploy`` passes it, having validated ``func.yaml``), the
    replica skips reading ``func.yaml``: one less parse on every cold start."""
    from wonderland.functions.loader import load_function

    env = os.environ if env is None else env
    if invoke is None:
        from wonderland.functions.funcyaml import load_config

        config = load_config(root)
        name, loaded = config.name, load_function(root, config)
    else:
        name, loaded = root.name, load_function(root, invoke=invoke)
    sockets = [_bind(host, port) for host, port in listen_addresses(env)]

    import uvicorn

    uv_config = uvicorn.Config(
        loaded.app,
        lifespan="on",
        log_level=env.get("WONDERLAND_LOG_LEVEL", "warning").lower(),
        access_log=False,
        loop="auto",
        http="auto",
        ws="none",  # functions are HTTP only; skipping websockets saves start-up time
        server_header=False,
        timeout_graceful_shutdown=25,
    )
    server = uvicorn.Server(uv_config)
    where = ", ".join(f"http://{s.getsockname()[0]}:{s.getsockname()[1]}" for s in sockets)
    print(f"function {name or root.name} ({loaded.layout}) listening on {where}", flush=True)
    server.run(sockets=sockets)
    return 0 if server.started else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wonderland.functions.host",
        description="Serve the function in DIR on LISTEN_ADDRESS or PORT.",
    )
    parser.add_argument("path", nargs="?", default=".", help="function folder (default: .)")
    parser.add_argument(
        "--invoke",
        choices=("http", "cloudevent"),
        default=None,
        help="serve as this kind without reading func.yaml (func deploy passes it)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return serve(Path(args.path), invoke=args.invoke)
    except WonderlandError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
