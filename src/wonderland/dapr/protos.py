"""Load the ``dapr`` package's generated message modules without its package initialisers.

The sidecar needs only the ``*_pb2`` message classes the ``dapr`` PyPI package ships.
Importing them the usual way first runs ``dapr/__init__.py`` (which scans the installed
distributions) and ``dapr/proto/__init__.py`` and ``dapr/proto/runtime/v1/__init__.py``
(which import grpcio, about 10 MB of resident memory, and the gRPC stubs a sidecar
never calls). :func:`messages_only`
registers those packages as plain packages over the same directories, so only the
generated modules load. It is for a process that runs nothing but the sidecar
(``wonderland sidecar``): code there that imports the SDK's client would find the
``dapr.proto`` helpers missing.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

__all__ = ["messages_only"]

_PACKAGES = (
    "dapr",
    "dapr.proto",
    "dapr.proto.common",
    "dapr.proto.common.v1",
    "dapr.proto.runtime",
    "dapr.proto.runtime.v1",
)


def messages_only() -> None:
    """Make the packages above bare packages unless one of them is imported already."""
    if any(name in sys.modules for name in _PACKAGES):
        return
    spec = importlib.util.find_spec("dapr")
    if spec is None or not spec.submodule_search_locations:
        return  # not installed: the import that needs it will say so
    roots = list(spec.submodule_search_locations)
    for name in _PACKAGES:
        sub = name.split(".")[1:]
        module = types.ModuleType(name, "generated messages of the dapr package (bare package)")
        module.__path__ = [os.path.join(r, *sub) for r in roots]
        module.__package__ = name
        sys.modules[name] = module
        parent, _, leaf = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], leaf, module)
