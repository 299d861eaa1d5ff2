"""Reading the running daemon's payload sink (``wonderland models payloads``, the console)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from wonderland.errors import ConfigError, WonderlandError

__all__ = ["read_payloads"]


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
