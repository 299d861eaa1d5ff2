"""A `wonderland up --prometheus` daemon for the tests that scrape with Debian's real
Prometheus, and the queries they ask it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support.daemon import WonderlandDaemon, daemon_env, free_port

HERE = Path(__file__).resolve().parent
METRICS_APP = HERE / "metrics_app.py"
DOMAIN = "127.0.0.1.sslip.io"
# one scrape a second: a rate needs two samples, so a query answers within seconds
SCRAPE_INTERVAL = "1"


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason`` on a developer's machine; under CI=true a missing piece fails."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the Prometheus tests must run; `make prometheus`)")
    pytest.skip(reason)


def require_prometheus() -> str:
    found = shutil.which("prometheus")
    if found is None:
        skip_or_fail("Debian's prometheus is not installed; run `make prometheus`")
    assert found is not None
    return found


def prometheus_daemon(tmp: Path, **extra: str) -> WonderlandDaemon:
    env = daemon_env(
        tmp,
        gateway_port=free_port(),
        WONDERLAND_PROMETHEUS_PORT="0",
        WONDERLAND_PROMETHEUS_SCRAPE_INTERVAL=SCRAPE_INTERVAL,
        **extra,
    )
    return WonderlandDaemon(tmp / "home", env, tmp / "daemon.log")


def info(daemon: WonderlandDaemon) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((daemon.home / "daemon.json").read_text())
    return data


class PromClient:
    """Prometheus's HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def targets(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()
        return list(answer["data"]["activeTargets"])

    def query(self, expr: str) -> dict[str, Any]:
        """``/api/v1/query``'s answer (status success or error) for ``expr``."""
        answer: dict[str, Any] = httpx.post(
            f"{self.url}/api/v1/query", data={"query": expr}, timeout=10
        ).json()
        return answer

    def values(self, expr: str) -> list[float]:
        answer = self.query(expr)
        assert answer["status"] == "success", (expr, answer)
        return [float(r["value"][1]) for r in answer["data"]["result"]]
