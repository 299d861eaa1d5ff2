"""A platform with the workloads plugin (kubelet, Job and CronJob controllers) per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wonderland.platform import Platform
from wonderland.settings import Settings


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    """Pods run as real processes; a failed pod is replaced after 0.2 s, 0.4 s, ..."""
    settings = Settings(home=tmp_path / "home", gateway_port=0, api_port=0, backoff_seconds=0.2)
    platform = Platform.open(settings)
    platform.install_plugins(("wonderland.workloads",))
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()
        platform.store.close()
