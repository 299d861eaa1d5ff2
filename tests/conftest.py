"""Suite-wide collection rules."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``make test`` runs ``--dist loadgroup``) a test file runs on one
    worker, so its module fixtures (daemons, model servers) start once; every test of the
    quickstart platform shares one group, so its session fixture starts `make up` once."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        if "quickstart" in getattr(item, "fixturenames", ()):
            group = "quickstart"
        else:
            group = item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))
