"""A platform with the workloads, training and tuning plugins per test (trials are real
processes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tuning_support import Tuner, start_tuner

pytest.importorskip("optuna", reason="the tuning tests need the tuning extra (optuna)")


@pytest.fixture
async def tuner(tmp_path: Path) -> AsyncIterator[Tuner]:
    started = await start_tuner(tmp_path / "home")
    try:
        yield started
    finally:
        await started.stop()
