"""daprd's flags behind the commonly used ``dapr.io/`` annotations, on a real sidecar, and
how the platform turns a revision's annotations into them (or into a Warning Event)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from wonderland.dapr.platform import sidecar_flags
from wonderland.dapr.sidecar import SidecarProcess

pytestmark = pytest.mark.e2e


async def test_app_max_concurrency_body_limit_and_api_logging(
    sidecar_factory: Callable[..., SidecarProcess],
    basic_resources: Path,
    app_factory: Callable[..., int],
    tmp_path: Path,
) -> None:
    app = app_factory()
    sc = sidecar_factory(
        "limited",
        resources_path=[basic_resources],
        app_port=app,
        extra_args=[
            "--app-max-concurrency",
            "1",
            "--max-body-size",
            "1Ki",
            "--enable-api-logging",
        ],
    )
    # three 0.4 s calls to the app: with one at a time they take 1.2 s, not 0.4 s
    url = sc.http_url + "/v1.0/invoke/limited/method/slow/0.4"
    async with httpx.AsyncClient(timeout=30) as client:
        started = time.monotonic()
        answers = await asyncio.gather(*(client.get(url) for _ in range(3)))
        took = time.monotonic() - started
        assert [r.status_code for r in answers] == [200, 200, 200]
        assert took >= 1.1, f"three calls took {took:.2f}s: they ran at once"
        # --max-body-size 1Ki: a 2 KiB state write is refused
        big = [{"key": "k", "value": "x" * 2048}]
        r = await client.post(sc.http_url + "/v1.0/state/statestore", json=big)
        assert r.status_code == 413
        small = [{"key": "k", "value": "x"}]
        r = await client.post(sc.http_url + "/v1.0/state/statestore", json=small)
        assert r.status_code == 204
    log = (tmp_path / "sidecar-limited.log").read_text()
    assert "HTTP API Called: app_id=limited method=POST /v1.0/state/statestore code=204" in log


def test_annotations_become_daprd_flags_and_env() -> None:
    flags, env, problems = sidecar_flags(
        {
            "dapr.io/enabled": "true",
            "dapr.io/app-id": "orders",
            "dapr.io/metrics-port": "9092",
            "dapr.io/log-level": "debug",
            "dapr.io/enable-api-logging": "true",
            "dapr.io/app-max-concurrency": "2",
            "dapr.io/http-max-request-size": "16",
            "dapr.io/max-body-size": "8Mi",
            "dapr.io/enable-app-health-check": "true",
            "dapr.io/app-health-check-path": "/ready",
            "dapr.io/app-health-probe-interval": "3",
            "dapr.io/app-health-probe-timeout": "200",
            "dapr.io/app-health-threshold": "2",
            "dapr.io/env": "GOMEMLIMIT=100MiB, DEBUG=1",
        }
    )
    assert problems == []
    pairs = dict(zip(flags[::2], flags[1::2], strict=False))
    assert pairs["--log-level"] == "debug"
    assert pairs["--app-max-concurrency"] == "2"
    assert pairs["--dapr-http-max-request-size"] == "16"
    assert pairs["--max-body-size"] == "8Mi"
    assert "--enable-api-logging=true" in flags and "--enable-app-health-check" in flags
    assert flags[flags.index("--app-health-check-path") + 1] == "/ready"
    assert flags[flags.index("--app-health-probe-interval") + 1] == "3"
    assert flags[flags.index("--app-health-probe-timeout") + 1] == "200"
    assert flags[flags.index("--app-health-threshold") + 1] == "2"
    assert env == {"GOMEMLIMIT": "100MiB", "DEBUG": "1"}


def test_unsupported_annotations_and_bad_values_are_reported() -> None:
    flags, _env, problems = sidecar_flags(
        {
            "dapr.io/enabled": "true",
            "dapr.io/sidecar-cpu-limit": "300m",
            "dapr.io/sidecar-memory-limit": "1000Mi",
            "dapr.io/app-max-concurrency": "lots",
            "dapr.io/log-level": "loud",
            "dapr.io/app-protocol": "grpc",
        }
    )
    text = "\n".join(problems)
    assert "dapr.io/sidecar-cpu-limit, dapr.io/sidecar-memory-limit are not supported" in text
    assert "dapr.io/app-max-concurrency: 'lots' is not a whole number" in text
    assert "dapr.io/log-level: 'loud'" in text
    assert "dapr.io/app-protocol: 'grpc' is not supported" in text
    assert "--app-max-concurrency" not in flags
    assert flags[:2] == ["--log-level", "info"]
