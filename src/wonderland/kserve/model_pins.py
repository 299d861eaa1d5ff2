"""InferenceServices whose ``storageUri`` names the model registry: the version each
serves now, and following an alias when it moves.

``models:/NAME@ALIAS`` and ``models:/NAME/latest`` are moving targets: an InferenceService
is deployed with the version they resolve to (``models:/NAME/VERSION``, recorded in
``status.modelRegistry`` with the run that made it), and while the tracking server runs a
watcher looks the alias up every ``mlflow_poll_seconds``; when it points elsewhere the
InferenceService is reconciled again, which rolls out a new predictor revision (a canary
when ``canaryTrafficPercent`` is set). Lookups never start the tracking server nor keep
it up; when it is down the version being served stays, and the next lookup retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wonderland.tracking.access import TrackingAccess
from wonderland.tracking.client import TrackingError, TrackingUnavailable
from wonderland.tracking.resolve import UnknownModel, resolve_version
from wonderland.tracking.uris import ModelUri, TrackingUri, parse

__all__ = ["ModelPins", "Pin", "PinError"]

log = logging.getLogger("wonderland.kserve")


class PinError(Exception):
    """The registry cannot say which version to serve: ``reason`` for the condition."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Pin:
    """What ``uri`` resolved to: ``pinned`` is the URI the predictor loads."""

    uri: str
    name: str
    version: str
    run_id: str
    pinned: str

    def status(self) -> dict[str, str]:
        out = {"uri": self.uri, "pinned": self.pinned}
        if self.name:
            out["name"] = self.name
        if self.version:
            out["version"] = self.version
        if self.run_id:
            out["runId"] = self.run_id
        return out

    @classmethod
    def from_status(cls, status: Any) -> Pin | None:
        if not isinstance(status, dict) or not status.get("uri") or not status.get("pinned"):
            return None
        return cls(
            str(status["uri"]),
            str(status.get("name", "")),
            str(status.get("version", "")),
            str(status.get("runId", "")),
            str(status["pinned"]),
        )


def _moving(uri: TrackingUri) -> bool:
    return isinstance(uri, ModelUri) and (bool(uri.alias) or uri.latest)


def _lookup(base_url: str, uri: TrackingUri, raw: str) -> Pin:
    """What ``raw`` (parsed: ``uri``) names on the server at ``base_url`` now."""
    found = resolve_version(raw, base_url, timeout=15.0)
    name = uri.name if isinstance(uri, ModelUri) else ""
    return Pin(raw, name, found.version, found.run_id, found.uri)


class ModelPins:
    """The pins of every InferenceService that names the registry, and the watcher
    (a platform service) that notices an alias move."""

    def __init__(
        self,
        tracking: TrackingAccess | None,
        poll_seconds: float,
        enqueue: Callable[[str, str], None],
    ) -> None:
        self.tracking = tracking
        self.poll_seconds = poll_seconds
        self.enqueue = enqueue
        self._pins: dict[tuple[str, str], Pin] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def client_uri(self) -> str:
        return self.tracking.client_uri if self.tracking is not None else ""

    async def pin(self, namespace: str, name: str, uri: str, recorded: Any) -> Pin:
        """The version the InferenceService ``namespace/name`` serves for ``uri``: the one
        it serves already (``recorded``: its ``status.modelRegistry``), else resolved now
        (waking the tracking server)."""
        key = (namespace, name)
        current = self._pins.get(key)
        if current is None or current.uri != uri:
            current = Pin.from_status(recorded)
            if current is not None and current.uri != uri:
                current = None
        if current is not None:
            self._pins[key] = current
            return current
        tracking = self.tracking
        if tracking is None or not tracking.enabled:
            raise PinError(
                "ModelLoadFailed",
                f"storageUri {uri}: the model registry is MLflow's, which is not running here; "
                "install the mlflow extra (pip install 'wonderland[mlflow]') or set "
                "WONDERLAND_MLFLOW_TRACKING_URI to an MLflow server",
            )
        parsed = parse(uri)
        try:
            base = await tracking.wake()
            found = await asyncio.to_thread(_lookup, base, parsed, uri)
        except UnknownModel as exc:
            raise PinError("ModelNotFound", f"storageUri {uri}: {exc}") from None
        except TrackingUnavailable as exc:
            raise PinError("RegistryUnavailable", f"storageUri {uri}: {exc}") from None
        except TrackingError as exc:
            raise PinError("ModelLoadFailed", f"storageUri {uri}: {exc}") from None
        self._pins[key] = found
        return found

    def forget(self, namespace: str, name: str) -> None:
        self._pins.pop((namespace, name), None)

    # -- the watcher -------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="alias watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check(self) -> list[tuple[str, str]]:
        """Look every moving pin up once (only while the tracking server runs); the
        InferenceServices whose alias now points at another version, re-pinned."""
        tracking = self.tracking
        base = tracking.running_uri() if tracking is not None else None
        if base is None:
            return []
        moved: list[tuple[str, str]] = []
        for key, pin in list(self._pins.items()):
            parsed = parse(pin.uri)
            if not _moving(parsed):
                continue
            try:
                found = await asyncio.to_thread(_lookup, base, parsed, pin.uri)
            except TrackingError as exc:
                # down, or the alias is gone: the version being served stays
                log.debug("alias lookup for %s/%s failed: %s", *key, exc)
                continue
            if self._pins.get(key) is not pin:
                continue  # forgotten or re-pinned meanwhile
            if found.pinned != pin.pinned:
                log.info(
                    "InferenceService %s/%s: %s moved from version %s to %s",
                    *key,
                    pin.uri,
                    pin.version,
                    found.version,
                )
                self._pins[key] = found
                moved.append(key)
        return moved

    async def _watch(self) -> None:
        while True:
            started = time.monotonic()
            try:
                for namespace, name in await self.check():
                    self.enqueue(namespace, name)
            except Exception:
                log.exception("the alias watcher failed; it carries on")
            await asyncio.sleep(max(0.05, self.poll_seconds - (time.monotonic() - started)))
