"""The scrape loop: scrape, derive, record; save the history now and then and on stop.

A :class:`MetricsRecorder` (a :class:`~wonderland.platform.PlatformService`) runs one round
every ``interval`` seconds: the :class:`~wonderland.monitoring.scrape.MetricsScraper`
reads every target, the :class:`~wonderland.monitoring.derive.SeriesDeriver` turns the
samples into the derived series, and the :class:`~wonderland.monitoring.history.HistoryStore`
records them. The last round's samples are what ``/federate`` serves. A round that fails
is logged and the loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from wonderland.monitoring.derive import SeriesDeriver
from wonderland.monitoring.history import HistoryStore
from wonderland.monitoring.scrape import MetricsScraper, TargetScrape

__all__ = ["HISTORY_FILE", "MetricsRecorder"]

log = logging.getLogger("wonderland.monitoring")

# where the daemon keeps the history, under its state directory
HISTORY_FILE = Path("monitoring") / "history.npz"
SAVE_SECONDS = 300.0


class MetricsRecorder:
    def __init__(
        self,
        scraper: MetricsScraper,
        store: HistoryStore,
        path: Path | None,
        *,
        interval: float = 10.0,
        save_seconds: float = SAVE_SECONDS,
    ) -> None:
        self.scraper = scraper
        self.store = store
        self.deriver = SeriesDeriver()
        self.path = path
        self.interval = interval
        self.save_seconds = save_seconds
        self.latest: list[TargetScrape] = []
        self.last_round = 0.0  # unix seconds
        self.last_round_duration = 0.0
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None
        self._saved = time.monotonic()

    async def round(self) -> None:
        """Scrape every target once and record what derives from it."""
        started = time.time()
        scrapes = await self.scraper.scrape()
        derived = self.deriver.derive(scrapes)
        self.store.write(started, derived)
        self.latest = scrapes
        self.last_round = started
        self.last_round_duration = time.time() - started
        self.rounds += 1

    def save(self) -> None:
        if self.path is None:
            return
        try:
            self.store.save(self.path)
        except OSError as exc:
            log.warning("saving the metrics history to %s failed: %s", self.path, exc)
        self._saved = time.monotonic()

    async def _loop(self) -> None:
        retention = self.store.slots * self.store.step
        while True:
            began = time.monotonic()
            try:
                await self.round()
                if self.rounds % 100 == 0:
                    self.store.evict_idle(time.time(), retention)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("a metrics scrape round failed; the next one follows")
            if time.monotonic() - self._saved >= self.save_seconds:
                self.save()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - began)))

    async def start(self) -> None:
        if self.path is not None:
            self.store.load(self.path)
        self._saved = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.scraper.close()
        self.save()
