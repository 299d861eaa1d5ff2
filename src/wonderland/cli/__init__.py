"""The `wonderland` command line: a thin layer that parses, calls the library, renders.

Each command group lives in its own module with a ``register(subparsers)`` function;
modules import their heavy dependencies inside the command handlers so that
``wonderland --help`` and ``wonderland serve`` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from wonderland import __version__
from wonderland.errors import WonderlandError

# Modules under wonderland.cli that add subcommands; each has register(subparsers).
COMMAND_MODULES: tuple[str, ...] = (
    "func",
    "serve",
    "sidecar",
    "platform",
    "logs",
    "storage",
    "data",
    "models",
    "monitoring",
    "top",
    "console",
    "export",
    "build",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wonderland",
        description="Knative, Dapr and KServe's self-service APIs on one machine.",
    )
    parser.add_argument("--version", action="version", version=f"wonderland {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"wonderland.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        result = handler(args)
    except WonderlandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(result or 0)
