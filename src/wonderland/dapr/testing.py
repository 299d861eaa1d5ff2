"""Test helpers: a real sidecar process for a test, with the SDK pointed at it.

::

    import pytest
    from wonderland.dapr.testing import sidecar

    @pytest.fixture
    def dapr():
        with sidecar("orders", resources_path=["components"]) as sc:
            yield sc            # DaprClient() now talks to this sidecar

    def test_saves(dapr):
        with DaprClient() as client:
            client.save_state("statestore", "k", "v")
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from wonderland.dapr.sidecar import SidecarProcess

__all__ = ["sidecar"]


@contextlib.contextmanager
def sidecar(
    app_id: str = "test-app",
    *,
    resources_path: Sequence[str | Path] = (),
    app_port: int | None = None,
    env: dict[str, str] | None = None,
    set_env: bool = True,
    ready_timeout: float = 30.0,
) -> Iterator[SidecarProcess]:
    """Run ``wonderland sidecar`` on free ports until the block ends (its process group is killed).

    With ``set_env`` the block sees ``DAPR_HTTP_PORT``, ``DAPR_GRPC_PORT`` (and
    ``DAPR_API_TOKEN`` when ``env`` sets one), so ``DaprClient()`` finds the sidecar;
    the previous values come back afterwards.
    """
    with SidecarProcess(
        app_id,
        resources_path=resources_path,
        app_port=app_port,
        env=env,
        ready_timeout=ready_timeout,
    ) as sc:
        if not set_env:
            yield sc
            return
        values = {"DAPR_HTTP_PORT": str(sc.http_port), "DAPR_GRPC_PORT": str(sc.grpc_port)}
        if env and "DAPR_API_TOKEN" in env:
            values["DAPR_API_TOKEN"] = env["DAPR_API_TOKEN"]
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield sc
        finally:
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old
