"""``wonderland sidecar``: Dapr-compatible building blocks next to one app (``dapr run``'s flags)."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "sidecar",
        help="run Dapr-compatible building blocks (state, pub/sub, secrets, configuration) next to an app",
        description=(
            "Start a Dapr-compatible sidecar (HTTP and gRPC APIs) and, after --, the app command with "
            "APP_ID, APP_PORT, DAPR_HTTP_PORT and DAPR_GRPC_PORT set. Both stop together."
        ),
        usage="wonderland sidecar --app-id ID [options] [-- CMD ARGS...] | wonderland sidecar -f dapr.yaml",
    )
    p.add_argument("--app-id", "-a", default=None, help="the app id (required without -f)")
    p.add_argument(
        "--run-file",
        "-f",
        default=None,
        metavar="FILE",
        help="run every app of a Dapr multi-app template (dapr.yaml), each with its own sidecar",
    )
    p.add_argument("--app-port", "-p", type=int, default=None, help="port the app listens on")
    p.add_argument(
        "--app-protocol", "-P", default="http", choices=["http"], help="protocol of the app channel"
    )
    p.add_argument(
        "--app-channel-address", default="127.0.0.1", help="address of the app (default 127.0.0.1)"
    )
    p.add_argument(
        "--resources-path",
        "-d",
        action="append",
        default=[],
        metavar="DIR",
        help="folder (or file) of Component/Subscription/Resiliency YAML; repeatable "
        "(default ~/.dapr/components if it exists, else an embedded sqlite state store "
        "and in-memory pub/sub)",
    )
    p.add_argument(
        "--dapr-http-port", "-H", type=int, default=3500, help="HTTP API port (0: a free port)"
    )
    p.add_argument(
        "--dapr-grpc-port", "-G", type=int, default=50001, help="gRPC API port (0: a free port)"
    )
    p.add_argument(
        "--metrics-port",
        "-M",
        type=int,
        default=None,
        help="port of the Prometheus /metrics endpoint on 127.0.0.1 (default 9090, or a free "
        "port when 9090 is taken; 0: a free port)",
    )
    p.add_argument(
        "--enable-metrics",
        type=_flag,
        nargs="?",
        const=True,
        default=True,
        metavar="true|false",
        help="serve Dapr's metrics (default true; --enable-metrics=false serves no endpoint)",
    )
    p.add_argument("--config", "-c", default=None, help="a kind: Configuration file")
    p.add_argument(
        "--name-resolution-dir",
        default=None,
        metavar="DIR",
        help="folder where sidecars find each other for service invocation "
        "(default $WONDERLAND_HOME/dapr/apps)",
    )
    p.add_argument(
        "--enable-app-health-check",
        action="store_true",
        help="probe the app and pause deliveries while it is unhealthy",
    )
    p.add_argument(
        "--app-health-check-path", default="/healthz", help="path probed (default /healthz)"
    )
    p.add_argument(
        "--app-health-probe-interval",
        type=int,
        default=5,
        metavar="SECONDS",
        help="seconds between probes (default 5)",
    )
    p.add_argument(
        "--app-health-probe-timeout",
        type=int,
        default=500,
        metavar="MS",
        help="milliseconds a probe may take (default 500)",
    )
    p.add_argument(
        "--app-health-threshold",
        type=int,
        default=3,
        help="failed probes before the app counts as unhealthy (default 3)",
    )
    p.add_argument(
        "--app-max-concurrency",
        type=int,
        default=-1,
        metavar="N",
        help="requests sent to the app at once, pub/sub deliveries and invocations "
        "together (default -1: no limit)",
    )
    p.add_argument(
        "--max-body-size",
        default=None,
        metavar="SIZE",
        help="largest request body the APIs accept, a quantity such as 4Mi (default 4Mi)",
    )
    p.add_argument(
        "--dapr-http-max-request-size",
        type=int,
        default=None,
        metavar="MB",
        help="the same in megabytes (daprd's older flag; --max-body-size wins)",
    )
    p.add_argument(
        "--enable-api-logging",
        type=_flag,
        nargs="?",
        const=True,
        default=False,
        metavar="true|false",
        help="log every call of the HTTP API at info level (default false)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warn", "error"])
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...: the app to run")
    p.set_defaults(handler=_run)


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in {"true", "1", "yes", "on"}:
        return True
    if value in {"false", "0", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _body_limit(args: argparse.Namespace) -> int:
    """``--max-body-size`` (a quantity) or ``--dapr-http-max-request-size`` (MB), in bytes."""
    from wonderland.api import quantity
    from wonderland.errors import ConfigError, InvalidError

    if args.max_body_size is not None:
        try:
            size = int(quantity.parse(args.max_body_size, "--max-body-size"))
        except InvalidError as exc:
            raise ConfigError(f"{exc}; give a size such as 4Mi or 16M") from None
    elif args.dapr_http_max_request_size is not None:
        size = args.dapr_http_max_request_size * 1024 * 1024
    else:
        return 4 * 1024 * 1024
    if size <= 0:
        raise ConfigError(
            "the request body limit must be positive (for example --max-body-size 4Mi)"
        )
    return size


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    from pathlib import Path

    from wonderland.dapr.protos import messages_only

    messages_only()  # this process runs only sidecars: no grpcio, no SDK client helpers
    from wonderland.dapr import launcher
    from wonderland.dapr.resources import load_resources
    from wonderland.dapr.runtime import RuntimeOptions, default_state_dir
    from wonderland.dapr.sidecar import default_resources
    from wonderland.errors import ConfigError

    level = {"warn": "WARNING"}.get(args.log_level, args.log_level.upper())
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    import uvloop

    if args.run_file:
        from wonderland.dapr.runfile import load_run_file

        if args.app_id or command:
            raise ConfigError("-f runs the apps of the template; leave out --app-id and -- CMD")
        apps = load_run_file(args.run_file)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return int(runner.run(launcher.run_apps(apps)))
    if not args.app_id:
        raise ConfigError("--app-id is required (or -f dapr.yaml for a multi-app run)")
    state_dir = default_state_dir()
    paths = list(args.resources_path)
    if not paths and (Path.home() / ".dapr" / "components").is_dir():
        paths = [str(Path.home() / ".dapr" / "components")]
    resources = load_resources(paths, args.config)
    if not args.resources_path and not paths:
        defaults = default_resources(state_dir)
        resources.components = defaults.components
    namespace = os.environ.get("NAMESPACE", "")
    opts = RuntimeOptions(
        app_id=args.app_id,
        app_port=args.app_port,
        app_protocol=args.app_protocol,
        app_channel_address=args.app_channel_address,
        http_port=args.dapr_http_port,
        grpc_port=args.dapr_grpc_port,
        namespace=namespace,
        api_token=os.environ.get("DAPR_API_TOKEN", ""),
        app_api_token=os.environ.get("APP_API_TOKEN", ""),
        state_dir=state_dir,
        resources=resources.for_app(args.app_id, namespace),
        name_resolution_dir=Path(args.name_resolution_dir) if args.name_resolution_dir else None,
        app_health_check=args.enable_app_health_check,
        app_health_path=args.app_health_check_path,
        app_health_interval=float(args.app_health_probe_interval),
        app_health_timeout=args.app_health_probe_timeout / 1000,
        app_health_threshold=max(1, args.app_health_threshold),
        metrics_port=args.metrics_port,
        enable_metrics=args.enable_metrics,
        max_body_bytes=_body_limit(args),
        app_max_concurrency=max(0, args.app_max_concurrency),
        api_logging=args.enable_api_logging,
    )
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return int(runner.run(launcher.run(opts, command)))
