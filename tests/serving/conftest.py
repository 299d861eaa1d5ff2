"""Fixtures for the serving tests: a platform with Knative Serving installed, in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from serving_env import Env

from wonderland import serving, workloads
from wonderland.platform import Platform
from wonderland.settings import Settings


@pytest.fixture
async def platform_env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = Settings(home=tmp_path / "home", gateway_port=0, api_port=0)
    platform = Platform.open(settings)
    workloads.install(platform)
    system = serving.install(platform)
    await platform.start()
    try:
        yield Env(platform, system)
    finally:
        await platform.stop()
        platform.store.close()
