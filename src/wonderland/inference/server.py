"""The model server process: REST and gRPC on one event loop, optionally N workers.

Library entry point: ``serve(ServerOptions(...))`` blocks until SIGINT/SIGTERM.
``run_server(options)`` is the coroutine for embedding. With ``workers > 1`` the parent
forks N processes before anything else starts; each binds the HTTP and gRPC ports with
``SO_REUSEPORT`` (the kernel spreads connections) and loads the models once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wonderland.inference.errors import ModelConfigError

__all__ = ["ServerOptions", "run_server", "serve"]

log = logging.getLogger("wonderland.inference")


@dataclass
class ServerOptions:
    """Everything ``wonderland serve`` accepts (KServe's flag names, snake case)."""

    model_name: str = "model"
    model_dir: Path | None = None
    model_repository: Path | None = None
    model_format: str | None = None
    model_class: str | None = None
    host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_port: int = 8081
    enable_grpc: bool = True
    workers: int = 1
    max_batch_size: int = 64
    max_latency_ms: float = 0.0
    max_queue_size: int = 1024
    max_request_size: int = 64 * 1024 * 1024
    grpc_max_send_message_length: int = 8 * 1024 * 1024
    grpc_max_receive_message_length: int = 8 * 1024 * 1024
    nthread: int = 1
    timeout_keep_alive: int = 65
    log_level: str = "info"
    event_loop: str = "uvloop"
    predictor_host: str | None = None
    predictor_protocol: str = "v1"
    predictor_use_ssl: bool = False
    predictor_request_timeout_seconds: float = 600.0
    # Open the ports only once every model is loaded (a replica that is probed by TCP
    # must not look ready before its model is in memory, as KServe's server does).
    load_before_listen: bool = False
    runtime_options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if self.model_dir is None and self.model_repository is None:
            raise ModelConfigError(
                "nothing to serve: pass --model_dir DIR (with --model_name) or "
                "--model-repository DIR"
            )
        if self.workers < 1:
            raise ModelConfigError(f"--workers must be at least 1, got {self.workers}")
        for flag, port in (("--http_port", self.http_port), ("--grpc_port", self.grpc_port)):
            if not 0 <= port <= 65535:
                raise ModelConfigError(f"{flag} {port} is not a TCP port (0-65535)")
        if self.predictor_protocol not in ("v1", "v2", "grpc-v2"):
            raise ModelConfigError(
                f"--predictor_protocol {self.predictor_protocol!r} is not v1, v2 or grpc-v2"
            )
        if self.workers > 1 and (self.http_port == 0 or self.grpc_port == 0):
            raise ModelConfigError("--workers > 1 needs fixed ports (not 0) to share them")


def build_dataplane(options: ServerOptions) -> Any:
    from wonderland.inference.dataplane import DataPlane
    from wonderland.inference.repository import BatchingOptions, ModelRepository, ModelSource

    sources = []
    opts = {"nthread": options.nthread, **options.runtime_options}
    if options.model_class:
        opts["model_class"] = options.model_class
    if options.predictor_host:
        opts.update(
            predictor_host=options.predictor_host,
            predictor_protocol=options.predictor_protocol,
            predictor_use_ssl=options.predictor_use_ssl,
            predictor_request_timeout_seconds=options.predictor_request_timeout_seconds,
        )
    if options.model_dir is not None:
        if not options.model_dir.exists():
            raise ModelConfigError(
                f"--model_dir {options.model_dir} does not exist; point it at the model's folder"
            )
        sources.append(
            ModelSource(options.model_name, options.model_dir, options.model_format, opts)
        )
    repo = ModelRepository(
        sources,
        root=options.model_repository,
        batching=BatchingOptions(
            options.max_batch_size, options.max_latency_ms, options.max_queue_size
        ),
        model_format=options.model_format,
        options=opts,
    )
    if options.model_repository is not None:
        repo.discover()  # fail fast on a missing folder
    return DataPlane(repo)


def _http_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ModelConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another --http_port"
        ) from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def run_server(options: ServerOptions, reuse_port: bool = False) -> None:
    """Serve until cancelled or signalled (the coroutine behind :func:`serve`)."""
    import uvicorn

    from wonderland.inference.rest import RestApp

    dataplane = build_dataplane(options)
    app = RestApp(dataplane, options.max_request_size)
    from wonderland.inference.payload_logger import PayloadLogger, logger_from_env

    app = logger_from_env(app)  # KServe's payload logger, when KSERVE_LOGGER_URL is set
    payload_logger = app if isinstance(app, PayloadLogger) else None
    load_first = reuse_port or options.load_before_listen
    if load_first:
        # A worker joins the shared ports only once its models are loaded, so the
        # kernel never hands a connection to a worker that would answer 503.
        await dataplane.repository.load_all()
    sock = _http_socket(options.host, options.http_port, reuse_port)
    http_port = sock.getsockname()[1]
    grpc_server = None
    grpc_port = None
    if options.enable_grpc:
        from wonderland.inference.grpc_server import create_grpc_server

        grpc_server = create_grpc_server(
            dataplane,
            options.grpc_max_send_message_length,
            options.grpc_max_receive_message_length,
        )
        try:
            grpc_port = await grpc_server.start(options.host, options.grpc_port, reuse_port=True)
        except OSError as exc:
            sock.close()
            raise ModelConfigError(
                f"cannot listen on {options.host}:{options.grpc_port} for gRPC "
                f"({exc.strerror or exc}); pick another --grpc_port"
            ) from None
    config = uvicorn.Config(
        app,
        http="httptools",
        loop="none",
        lifespan="off",
        access_log=False,
        log_level=options.log_level,
        timeout_keep_alive=options.timeout_keep_alive,
        server_header=False,
        date_header=False,
    )

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await super().shutdown(sockets)
            # the connections are closed, so every logged call is queued: send them (the
            # flush is bounded) before uvicorn re-raises the signal that stopped it
            if payload_logger is not None:
                await payload_logger.close()

    server = Server(config)
    loader = None if load_first else asyncio.create_task(dataplane.repository.load_all())
    print(
        f"wonderland serve: pid {os.getpid()}, REST http://{options.host}:{http_port}"
        + (f", gRPC {options.host}:{grpc_port}" if grpc_port else ""),
        file=sys.stderr,
        flush=True,
    )
    try:
        await server.serve(sockets=[sock])
    finally:
        if loader is not None:
            loader.cancel()
        if grpc_server is not None:
            await grpc_server.stop(grace=1.0)
        await dataplane.repository.close()
        sock.close()


def _run_one(options: ServerOptions, reuse_port: bool) -> None:
    logging.basicConfig(
        level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if options.event_loop == "uvloop":
        import uvloop

        uvloop.run(run_server(options, reuse_port))
    else:
        asyncio.run(run_server(options, reuse_port))


def serve(options: ServerOptions) -> int:
    """Run the model server in the foreground; returns the exit status."""
    options.check()
    metrics_dir = None
    if options.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Must be set before prometheus_client is imported (by build_dataplane below).
        metrics_dir = tempfile.mkdtemp(prefix="wonderland-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        build_dataplane(options)  # fail fast on bad paths, before any process starts
        if options.workers == 1:
            _run_one(options, reuse_port=False)
            return 0
        return _run_workers(options)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_workers(options: ServerOptions) -> int:
    from prometheus_client import multiprocess

    # Hold both ports with SO_REUSEPORT (not listening) so nobody else takes them while
    # workers start; each worker binds its own listening socket on the same ports.
    holders = []
    for port in (options.http_port, options.grpc_port):
        s = socket.socket(socket.AF_INET6 if ":" in options.host else socket.AF_INET)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            s.bind((options.host, port))
        except OSError as exc:
            raise ModelConfigError(f"cannot bind {options.host}:{port}: {exc.strerror}") from None
        holders.append(s)
    children: list[int] = []
    for _ in range(options.workers):
        pid = os.fork()
        if pid == 0:  # worker
            for s in holders:
                s.close()
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _run_one(options, reuse_port=True)
            except BaseException as exc:
                print(f"worker {os.getpid()} failed: {exc}", file=sys.stderr, flush=True)
                code = 1
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: Any) -> None:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    remaining = set(children)
    while remaining:
        try:
            pid, st = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:  # pragma: no cover
            continue
        remaining.discard(pid)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
        if os.waitstatus_to_exitcode(st) != 0:
            status = 1
            forward(signal.SIGTERM, None)  # one worker down: stop the rest
    for s in holders:
        s.close()
    return status
