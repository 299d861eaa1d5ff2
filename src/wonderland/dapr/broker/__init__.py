"""``pubsub.in-memory`` on the platform: one broker in the daemon's memory for every sidecar.

A standalone sidecar keeps ``pubsub.in-memory`` in its own process. Under ``wonderland up``
every replica has its own sidecar process, so a process-local broker would never carry an
event from one app to another. Here "in memory" means "in the platform's memory", in
modules with one role each:

- :mod:`wonderland.dapr.broker.server`: :class:`PlatformBroker`, run by the daemon;
- :mod:`wonderland.dapr.broker.wire`: the frames between the broker and its clients;
- :mod:`wonderland.dapr.components.pubsub_platform`: ``PlatformPubSub``, the component a
  platform sidecar uses for ``pubsub.in-memory``, a client of the broker;
- :mod:`wonderland.dapr.platform_sidecar`: the entry point the platform starts its
  sidecars with, which registers that component.

The Dapr plugin (:func:`wonderland.dapr.platform.install`) runs the broker and points its
sidecars at that entry point.
"""

from wonderland.dapr.broker.server import PlatformBroker
from wonderland.dapr.broker.wire import BACKLOG, BROKER_FILE

__all__ = ["BACKLOG", "BROKER_FILE", "PlatformBroker"]
