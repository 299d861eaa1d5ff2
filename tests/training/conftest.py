"""A platform with the workloads and training plugins per test (pods are real processes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from training_support import Trainer

from wonderland.platform import Platform
from wonderland.settings import Settings


@pytest.fixture
async def trainer(tmp_path: Path) -> AsyncIterator[Trainer]:
    settings = Settings(home=tmp_path / "home", gateway_port=0, api_port=0, backoff_seconds=0.2)
    platform = Platform.open(settings)
    platform.install_plugins(("wonderland.workloads", "wonderland.training"))
    await platform.start()
    try:
        yield Trainer(platform)
    finally:
        await platform.stop()
        platform.store.close()
