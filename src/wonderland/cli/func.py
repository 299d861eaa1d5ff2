"""``wonderland func create / run / deploy / invoke``: Knative Functions on this machine."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from wonderland.errors import ConfigError
from wonderland.ports import free_port

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "func",
        help="create, run, deploy and invoke functions (Knative Functions compatible)",
        description="Knative Functions for Python: the same folder works with Knative's func.",
    )
    sub = parser.add_subparsers(dest="func_command", metavar="COMMAND")
    parser.set_defaults(handler=lambda _args: _help(parser))

    create = sub.add_parser("create", help="write a new function folder from a template")
    create.add_argument("path", help="folder to create (its name is the function's name)")
    create.add_argument("-l", "--language", default="python", help="language (python)")
    create.add_argument(
        "-t", "--template", default="http", help="template: http (default) or cloudevents"
    )
    create.set_defaults(handler=_create)

    run = sub.add_parser("run", help="serve the function locally")
    _path_arg(run)
    run.add_argument(
        "--address",
        default=None,
        help="host:port to listen on (default 127.0.0.1:8080, or a free port if it is taken)",
    )
    run.add_argument(
        "-e",
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment variable for this run (not saved); repeatable",
    )
    run.add_argument("--build", action="store_true", help="rebuild the environment first")
    run.set_defaults(handler=_run)

    deploy = sub.add_parser("deploy", help="deploy as a Knative Service on the local platform")
    _path_arg(deploy)
    deploy.add_argument("-n", "--namespace", default=None, help="namespace (default: func.yaml)")
    deploy.add_argument("--build", action="store_true", help="rebuild the environment first")
    deploy.add_argument("--no-wait", action="store_true", help="return without waiting for Ready")
    deploy.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for Ready")
    deploy.set_defaults(handler=_deploy)

    delete = sub.add_parser("delete", help="remove the deployed function from the platform")
    _path_arg(delete)
    delete.add_argument("-n", "--namespace", default=None, help="namespace (default: func.yaml)")
    delete.set_defaults(handler=_delete)

    listing = sub.add_parser("list", help="list the deployed functions")
    listing.add_argument("-n", "--namespace", default="default", help="namespace (default)")
    listing.add_argument(
        "-A", "--all-namespaces", action="store_true", help="functions of every namespace"
    )
    listing.set_defaults(handler=_list)

    invoke = sub.add_parser("invoke", help="call the deployed (or a running) function")
    _path_arg(invoke)
    invoke.add_argument("--data", default=None, help='request body (default {"message": ...})')
    invoke.add_argument("--content-type", default="application/json", help="body media type")
    invoke.add_argument(
        "-f",
        "--format",
        choices=("http", "cloudevent"),
        default=None,
        help="send plain HTTP or a CloudEvent (default: func.yaml invoke)",
    )
    invoke.add_argument("--type", default="boson.fn", help="CloudEvent type")
    invoke.add_argument("--source", default="/boson/fn", help="CloudEvent source")
    invoke.add_argument("--id", default=None, help="CloudEvent id (default: a new UUID)")
    invoke.add_argument("--request-path", default="/", help="path to call (default /)")
    invoke.add_argument("--target", default=None, help="URL to call instead of the deployed one")
    invoke.add_argument("-n", "--namespace", default=None, help="namespace (default: func.yaml)")
    invoke.set_defaults(handler=_invoke)


def _path_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p", "--path", default=".", help="function folder (default: the current folder)"
    )


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def _create(args: argparse.Namespace) -> int:
    from wonderland.functions.create import create_function

    created = create_function(Path(args.path), language=args.language, template=args.template)
    print(f"Created {args.language} function {created.name} ({created.template}) in {created.root}")
    for name in created.files:
        print(f"  {name}")
    return 0


def _free_port(host: str, port: int) -> int:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
            return port
        except OSError:
            pass
    return free_port(host)


def _run(args: argparse.Namespace) -> int:
    from wonderland.functions.build import build_function
    from wonderland.functions.deploy import platform_lookup
    from wonderland.functions.envs import resolve_envs
    from wonderland.functions.funcyaml import load_config
    from wonderland.functions.loader import detect_layout

    root = Path(args.path).resolve()
    config = load_config(root)
    config.check_runnable_here()
    detect_layout(root)
    extra: dict[str, str] = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--env {item!r}: expected NAME=VALUE")
        extra[name] = value
    envs = resolve_envs(config.run_envs, os.environ, platform_lookup(), config.namespace)
    built = build_function(root, force=args.build)
    address = args.address or f"127.0.0.1:{_free_port('127.0.0.1', 8080)}"
    _host, _, port = address.rpartition(":")
    env = dict(os.environ)
    env.update(envs)
    env.update(extra)
    env.update({"LISTEN_ADDRESS": address, "PORT": port, "PWD": str(root)})
    if built.installed:
        print(f"Built {config.name}: installed {', '.join(built.installed)}", file=sys.stderr)
    print(f"Running function {config.name or root.name} on http://{address}", file=sys.stderr)
    argv = [str(built.python), "-m", "wonderland.functions.host", str(root)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)


def _deploy(args: argparse.Namespace) -> int:
    from wonderland.functions.deploy import deploy_function

    result = deploy_function(
        Path(args.path),
        namespace=args.namespace,
        rebuild=args.build,
        wait=not args.no_wait,
        timeout=args.timeout,
        progress=lambda line: print(line, file=sys.stderr),
    )
    print(f"Function {result.name} deployed in namespace {result.namespace}")
    print(f"  revision: {result.revision or '(pending)'}")
    print(f"  URL:      {result.url or '(pending)'}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from wonderland.functions.deploy import delete_function

    for line in delete_function(Path(args.path), namespace=args.namespace):
        print(f"Deleted {line}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from wonderland.functions.deploy import list_functions

    functions = list_functions(None if args.all_namespaces else args.namespace)
    if not functions:
        where = "any namespace" if args.all_namespaces else f"namespace {args.namespace}"
        print(f"No functions deployed in {where}")
        return 0
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("NAME", "NAMESPACE", "RUNTIME", "URL", "READY"):
        table.add_column(column, no_wrap=True)
    for f in functions:
        table.add_row(f.name, f.namespace, f.runtime, f.url, f.ready)
    Console(width=200).print(table)
    return 0


def _invoke(args: argparse.Namespace) -> int:
    from wonderland.functions.invoke import InvokeRequest, invoke_function

    response = invoke_function(
        Path(args.path),
        InvokeRequest(
            data=args.data,
            content_type=args.content_type,
            format=args.format,
            event_type=args.type,
            event_source=args.source,
            event_id=args.id,
            path=args.request_path,
            target=args.target,
            namespace=args.namespace,
        ),
    )
    if response.event_attributes:
        print("Received response")
        for key, value in response.event_attributes.items():
            print(f"  {key}: {value}")
        print("Data:")
    sys.stdout.write(response.body_text)
    if not response.body_text.endswith("\n"):
        sys.stdout.write("\n")
    return 0 if response.status < 400 else 1
