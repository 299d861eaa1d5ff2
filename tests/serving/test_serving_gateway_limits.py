"""The platform's gateway takes its client limits from the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from wonderland import serving, workloads
from wonderland.errors import ConfigError
from wonderland.platform import Platform
from wonderland.serving.system import ServingSystem
from wonderland.settings import Settings


def test_gateway_limit_settings_are_read_and_checked() -> None:
    settings = Settings.from_env(
        {
            "WONDERLAND_GATEWAY_MAX_BODY_BYTES": "1000",
            "WONDERLAND_GATEWAY_HEADER_TIMEOUT": "2.5",
            "WONDERLAND_GATEWAY_IDLE_TIMEOUT": "90",
            "WONDERLAND_GATEWAY_QUEUE_MAX_BYTES": "5000",
        }
    )
    assert settings.gateway_max_body_bytes == 1000
    assert settings.gateway_header_timeout == 2.5
    assert settings.gateway_idle_timeout == 90.0
    assert settings.gateway_queue_max_bytes == 5000
    defaults = Settings()
    assert defaults.gateway_max_body_bytes == 64 * 1024 * 1024
    assert defaults.gateway_header_timeout == 30.0
    assert defaults.gateway_idle_timeout == 3600.0
    with pytest.raises(ConfigError, match="WONDERLAND_GATEWAY_MAX_BODY_BYTES"):
        Settings.from_env({"WONDERLAND_GATEWAY_MAX_BODY_BYTES": "lots"})
    with pytest.raises(ConfigError, match="WONDERLAND_GATEWAY_MAX_BODY_BYTES must be at least 1"):
        Settings.from_env({"WONDERLAND_GATEWAY_MAX_BODY_BYTES": "0"})
    with pytest.raises(ConfigError, match="WONDERLAND_GATEWAY_HEADER_TIMEOUT"):
        Settings.from_env({"WONDERLAND_GATEWAY_HEADER_TIMEOUT": "0"})
    with pytest.raises(ConfigError, match="WONDERLAND_GATEWAY_IDLE_TIMEOUT"):
        Settings.from_env({"WONDERLAND_GATEWAY_IDLE_TIMEOUT": "-1"})


@pytest.fixture
async def small_gateway(tmp_path: Path) -> AsyncIterator[ServingSystem]:
    settings = Settings(
        home=tmp_path / "home", gateway_port=0, api_port=0, gateway_max_body_bytes=1000
    )
    platform = Platform.open(settings)
    workloads.install(platform)
    system = serving.install(platform)
    await platform.start()
    try:
        yield system
    finally:
        await platform.stop()
        platform.store.close()


async def test_the_platform_gateway_refuses_a_body_over_the_setting(
    small_gateway: ServingSystem,
) -> None:
    async with httpx.AsyncClient(base_url=small_gateway.gateway_url, timeout=30) as client:
        big = await client.post("/", headers={"Host": "x.default.svc"}, content=b"b" * 1001)
        assert big.status_code == 413
        small = await client.post("/", headers={"Host": "x.default.svc"}, content=b"b" * 10)
        assert small.status_code == 404  # within the limit: on to routing (no such route)
