"""The scrape targets as a Prometheus file service discovery file, kept current.

:class:`FileSDWriter` (a platform service) follows the Pods in the store and rewrites
``<state_dir>/monitoring/targets.json`` whenever the targets change: one target group per
``/metrics`` in Prometheus's ``file_sd_configs`` JSON,
``[{"targets": ["127.0.0.1:41003"], "labels": {"job": "dapr", "__metrics_path__": "/metrics",
"namespace": ..., "pod": ..., ...}}]``. The daemon's own endpoints (the monitoring endpoint
and the gateway's ``/metrics``) come first, job ``wonderland``. Prometheus watches the file
(inotify), so a replica that starts is scraped at the next interval and one that stops
drops out; the file is replaced atomically, so Prometheus never reads half of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from wonderland.monitoring.targets import ScrapeTarget, targets_of
from wonderland.store import Store

__all__ = ["DAEMON_JOB", "TARGETS_FILE", "FileSDWriter", "daemon_targets", "target_groups"]

log = logging.getLogger("wonderland.monitoring")

# where the daemon writes the file, under its state directory
TARGETS_FILE = Path("monitoring") / "targets.json"
DAEMON_JOB = "wonderland"
PODS = "pods"


def _loopback_address(url: str) -> str | None:
    """``host:port`` of ``url`` as a scraper on this machine reaches it (a server bound to
    every address is reached on loopback)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if not host or port is None:
        return None
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def daemon_targets(info: Mapping[str, Any]) -> list[ScrapeTarget]:
    """The daemon's own ``/metrics`` from what it published (``daemon.json``): the
    monitoring endpoint while it runs, and the gateway's (its cold starts and per-revision
    gauges) when that is another address."""
    out: list[ScrapeTarget] = []
    monitoring = info.get("monitoring")
    if isinstance(monitoring, Mapping) and monitoring.get("state") == "running":
        address = _loopback_address(str(monitoring.get("url") or ""))
        if address:
            out.append(ScrapeTarget(DAEMON_JOB, address, "/metrics", (("component", "daemon"),)))
    gateway = info.get("gateway")
    if isinstance(gateway, str):
        address = _loopback_address(gateway)
        if address and all(t.address != address for t in out):
            out.append(ScrapeTarget(DAEMON_JOB, address, "/metrics", (("component", "gateway"),)))
    return out


def target_groups(targets: Iterable[ScrapeTarget]) -> list[dict[str, Any]]:
    """Prometheus file_sd target groups: one per target, its job and path as labels."""
    return [
        {
            "targets": [t.address],
            "labels": {"job": t.job, "__metrics_path__": t.path, **t.label_dict()},
        }
        for t in targets
    ]


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class FileSDWriter:
    """Keeps ``path`` equal to the targets of the daemon (``own()``) and of the running
    Pods; a :class:`~wonderland.platform.PlatformService`."""

    def __init__(
        self, store: Store, path: Path, own: Callable[[], list[ScrapeTarget]] = list
    ) -> None:
        self.store = store
        self.path = path
        self.own = own
        self.writes = 0  # how many times the file was replaced (tests, benchmarks)
        self._pods: dict[tuple[str, str], dict[str, Any]] = {}
        self._last: bytes | None = None
        self._task: asyncio.Task[None] | None = None

    def targets(self) -> list[ScrapeTarget]:
        """The daemon's targets, then each running Pod's, each address and path once."""
        seen = {t.url: t for t in self.own()}
        for t in targets_of(self._pods.values()):
            seen.setdefault(t.url, t)
        return list(seen.values())

    def refresh(self) -> bool:
        """Rewrite the file if the targets changed; whether it did."""
        data = orjson.dumps(target_groups(self.targets()), option=orjson.OPT_INDENT_2)
        if data == self._last:
            return False
        _write_atomically(self.path, data + b"\n")
        self._last = data
        self.writes += 1
        return True

    def _relist(self) -> str:
        items, rv = self.store.list(PODS)
        self._pods = {_key(p): p for p in items}
        return rv

    async def _follow(self, since: str) -> None:
        while True:
            try:
                async for event in self.store.watch(PODS, since):
                    since = str(event.rv)
                    key = (event.namespace, event.name)
                    if event.type == "DELETED":
                        self._pods.pop(key, None)
                    else:
                        self._pods[key] = event.object
                    self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # an expired resourceVersion, a store hiccup: list again
                log.warning("following Pods for %s failed; listing again", self.path, exc_info=True)
                await asyncio.sleep(1.0)
                since = self._relist()
                self.refresh()

    async def start(self) -> None:
        since = self._relist()
        self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._follow(since))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # the Pods' ports go with the daemon; its own targets stay, so a scraper shows it down
        self._pods = {}
        with contextlib.suppress(OSError):
            self.refresh()


def _key(pod: Mapping[str, Any]) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))
