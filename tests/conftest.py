"""Suite-wide collection rules."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``make test`` runs ``--dist loadgroup``) a test file runs on one
    worker, so its module fixtures (daemons, model servers) start once; every test of the
    quickstart platform shares one group, so its session fixture starts `make up` once.
    Files holding slow or end-to-end tests are collected first."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        if "quickstart" in getattr(item, "fixturenames", ()):
            group = "quickstart"
        else:
            group = item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))
    # Files with slow or end-to-end tests go first, so that the workers start on the long end-to-end runs
    # together and the quick tests fill the gaps at the end, instead of one worker finishing
    # a long file alone while the others idle. The sort is stable and keys on the file's
    # group, so each file's tests stay together and in their order.
    slow_groups = {
        _group(item)
        for item in items
        if item.get_closest_marker("slow") is not None or item.get_closest_marker("e2e")
    }
    items.sort(key=lambda item: _group(item) not in slow_groups)


def _group(item: pytest.Item) -> str:
    marker = item.get_closest_marker("xdist_group")
    return str(marker.args[0]) if marker is not None and marker.args else item.nodeid
