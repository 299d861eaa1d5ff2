"""Reading the running daemon's monitoring endpoint: the payload sink (``wonderland models
payloads``, the console) and the metrics history (``wonderland top``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from wonderland.errors import ConfigError, WonderlandError

__all__ = ["monitoring_url", "read_payloads", "read_top"]


def monitoring_url(state_dir: Path) -> str:
    """The URL of the running daemon's monitoring endpoint; ConfigError saying how to
    start it when no daemon runs or its endpoint does not."""
    from wonderland.daemon import daemon_info
    from wonderland.monitoring.plugin import INFO_KEY

    info = daemon_info(state_dir)
    if info is None:
        raise ConfigError(
            f"no wonderland daemon is running on {state_dir}; start it with 'wonderland up' "
            "(or set WONDERLAND_HOME to the state directory of the one that runs)"
        )
    monitoring = info.get(INFO_KEY) or {}
    if monitoring.get("state") != "running":
        raise ConfigError(
            "the platform's monitoring endpoint is not running"
            + (f" ({monitoring['reason']})" if monitoring.get("reason") else "")
            + f"; start it with 'wonderland up' (state directory {state_dir})"
        )
    return str(monitoring["url"])


def read_top(state_dir: Path, kind: str, namespace: str = "") -> dict[str, Any]:
    """The newest row of each object of ``kind`` (``/wonderland/v1/top``)."""
    from wonderland.monitoring.history_api import TOP_PATH

    url = f"{monitoring_url(state_dir)}{TOP_PATH}"
    params = {"kind": kind, **({"namespace": namespace} if namespace else {})}
    data: dict[str, Any] = _get_json(url, params)
    return data


def read_payloads(
    state_dir: Path, inference_service: str, namespace: str = "default", limit: int = 20
) -> list[dict[str, Any]]:
    """The newest logged calls of an InferenceService, request and response joined."""
    from wonderland.monitoring.sink import READ_PATH

    url = f"{monitoring_url(state_dir)}{READ_PATH}"
    params: dict[str, str | int] = {
        "namespace": namespace,
        "inferenceservice": inference_service,
        "limit": limit,
    }
    items: list[dict[str, Any]] = _get_json(url, params).get("items") or []
    return items


def _get_json(url: str, params: Mapping[str, str | int]) -> Any:
    """GET a JSON answer of the daemon's monitoring endpoint (loopback: no proxy)."""
    try:
        resp = httpx.get(url, params=dict(params), timeout=10, trust_env=False)
    except httpx.HTTPError as exc:
        raise WonderlandError(
            f"cannot read {url}: {exc}; is the daemon still running ('wonderland status')?"
        ) from None
    if resp.status_code != 200:
        raise WonderlandError(f"{url} answered {resp.status_code}: {resp.text[:300]}")
    return resp.json()
