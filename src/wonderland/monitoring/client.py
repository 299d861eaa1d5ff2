"""Reading the running daemon's monitoring endpoint: the payload sink (``wonderland models
payloads``, the console) and the metrics history (``wonderland top``)."""

from __future__ import annotations

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
    try:
        resp = httpx.get(url, params=params, timeout=10, trust_env=False)
    except httpx.HTTPError as exc:
        raise WonderlandError(
            f"cannot read {url}: {exc}; is the daemon still running ('wonderland status')?"
        ) from None
    if resp.status_code != 200:
        raise WonderlandError(f"{url} answered {resp.status_code}: {resp.text[:300]}")
    data: dict[str, Any] = resp.json()
    return data


def read_payloads(
    state_dir: Path, inference_service: str, namespace: str = "default", limit: int = 20
) -> list[dict[str, Any]]:
    """The newest logged calls of an InferenceService, request and response joined."""
    from wonderland.daemon import daemon_info
    from wonderland.monitoring.plugin import INFO_KEY
    from wonderland.monitoring.sink import READ_PATH

    info = daemon_info(state_dir) or {}
    monitoring = info.get(INFO_KEY) or {}
    if monitoring.get("state") != "running":
        raise ConfigError(
            "the platform's monitoring endpoint is not running"
            + (f" ({monitoring['reason']})" if monitoring.get("reason") else "")
            + f"; start it with 'wonderland up' (state directory {state_dir})"
        )
    url = f"{monitoring['url']}{READ_PATH}"
    params: dict[str, str | int] = {
        "namespace": namespace,
        "inferenceservice": inference_service,
        "limit": limit,
    }
    try:
        resp = httpx.get(url, params=params, timeout=10)
    except httpx.HTTPError as exc:
        raise WonderlandError(f"cannot read {url}: {exc}") from None
    if resp.status_code != 200:
        raise WonderlandError(f"{url} answered {resp.status_code}: {resp.text[:300]}")
    items: list[dict[str, Any]] = resp.json().get("items") or []
    return items
