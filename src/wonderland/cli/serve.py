"""``wonderland serve``: the Open Inference Protocol model server (KServe's flags)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from wonderland.errors import ConfigError

__all__ = ["register"]


def _flag(parser: argparse.ArgumentParser, name: str, **kwargs: object) -> None:
    """Add ``--a_b`` (KServe's spelling) with ``--a-b`` as an alias."""
    names = [f"--{name}"]
    if "_" in name:
        names.append(f"--{name.replace('_', '-')}")
    parser.add_argument(*names, **kwargs)  # type: ignore[arg-type]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve models over the Open Inference Protocol (REST V1/V2 and gRPC)",
        description="Serve one model (--model_dir) or a model repository over REST (V1, V2 "
        "with the binary tensor extension) and gRPC (inference.GRPCInferenceService).",
    )
    _flag(p, "model_name", default="model", help="name of the model (default: model)")
    _flag(p, "model_dir", type=Path, help="folder (or file) of the model to serve")
    _flag(p, "model_repository", type=Path, help="folder with one model per subfolder")
    _flag(
        p,
        "model_format",
        help="sklearn, xgboost, lightgbm, onnx, pytorch, huggingface, mlflow, custom",
    )
    _flag(p, "model_class", help="class to serve when a custom .py defines several")
    _flag(p, "host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    _flag(p, "http_port", type=int, default=None, help="REST port (default: $PORT or 8080)")
    _flag(p, "grpc_port", type=int, default=8081, help="gRPC port (default: 8081)")
    _flag(p, "enable_grpc", type=_bool, default=True, help="serve gRPC (default: true)")
    _flag(p, "workers", type=int, default=1, help="server processes (default: 1)")
    _flag(p, "max_batch_size", type=int, default=64, help="rows per merged model call; 1 = off")
    _flag(p, "max_latency_ms", type=float, default=0.0, help="wait for a batch to fill (ms)")
    _flag(p, "max_queue_size", type=int, default=1024, help="queued requests before 503")
    _flag(p, "max_request_size", type=int, default=64 * 1024 * 1024, help="REST body limit")
    _flag(p, "grpc_max_send_message_length", type=int, default=8 * 1024 * 1024)
    _flag(p, "grpc_max_receive_message_length", type=int, default=8 * 1024 * 1024)
    _flag(p, "nthread", type=int, default=1, help="threads per model call (default: 1)")
    _flag(p, "timeout_keep_alive", type=int, default=65)
    _flag(p, "log_level", default="info", choices=["debug", "info", "warning", "error"])
    _flag(p, "predictor_host", help="transformer mode: host[:port] of the predictor")
    p.add_argument(
        "--predictor_protocol",
        "--predictor-protocol",
        "--protocol",
        dest="predictor_protocol",
        default="v1",
        choices=["v1", "v2", "grpc-v2"],
        help="how to call the predictor (default: v1)",
    )
    _flag(p, "predictor_use_ssl", type=_bool, default=False)
    _flag(p, "predictor_request_timeout_seconds", type=float, default=600.0)
    _flag(
        p,
        "load_before_listen",
        type=_bool,
        default=False,
        help="open the ports only once the models are loaded (default: false)",
    )
    p.set_defaults(handler=_run)


def _bool(value: str) -> bool:
    v = value.lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _run(args: argparse.Namespace) -> int:
    from wonderland.inference.server import ServerOptions, serve

    http_port = args.http_port
    if http_port is None:
        env = os.environ.get("PORT")
        try:
            http_port = int(env) if env else 8080
        except ValueError:
            raise ConfigError(f"PORT={env!r} is not a port number") from None
    options = ServerOptions(
        model_name=args.model_name,
        model_dir=args.model_dir,
        model_repository=args.model_repository,
        model_format=args.model_format,
        model_class=args.model_class,
        host=args.host,
        http_port=http_port,
        grpc_port=args.grpc_port,
        enable_grpc=args.enable_grpc,
        workers=args.workers,
        max_batch_size=args.max_batch_size,
        max_latency_ms=args.max_latency_ms,
        max_queue_size=args.max_queue_size,
        max_request_size=args.max_request_size,
        grpc_max_send_message_length=args.grpc_max_send_message_length,
        grpc_max_receive_message_length=args.grpc_max_receive_message_length,
        nthread=args.nthread,
        timeout_keep_alive=args.timeout_keep_alive,
        log_level=args.log_level,
        predictor_host=args.predictor_host,
        predictor_protocol=args.predictor_protocol,
        predictor_use_ssl=args.predictor_use_ssl,
        predictor_request_timeout_seconds=args.predictor_request_timeout_seconds,
        load_before_listen=args.load_before_listen,
    )
    return serve(options)
