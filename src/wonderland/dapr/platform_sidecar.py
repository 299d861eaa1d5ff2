"""The entry point the platform starts its sidecars with: ``python -m
wonderland.dapr.platform_sidecar sidecar ...`` is ``wonderland sidecar ...`` with
``pubsub.in-memory`` served by the daemon's broker (see :mod:`wonderland.dapr.broker`)
instead of a broker in the sidecar's own process."""

from __future__ import annotations

import sys

__all__ = ["SIDECAR_MODULE", "main", "use_platform_broker"]

#: The module the Dapr plugin runs sidecars with, so that they use ``PlatformPubSub``.
SIDECAR_MODULE = "wonderland.dapr.platform_sidecar"


def use_platform_broker() -> None:
    """Make ``pubsub.in-memory`` in this process a client of the platform's broker."""
    from wonderland.dapr import components

    components.register(
        "pubsub.in-memory", "wonderland.dapr.components.pubsub_platform:PlatformPubSub"
    )


def main(argv: list[str]) -> int:
    """The ``wonderland`` command line with the platform's ``pubsub.in-memory``."""
    from wonderland.cli import main as cli_main

    use_platform_broker()
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
