"""Debian's headless Chromium driven by Playwright's Python client (``make browser``).

``chromium_page()`` yields a page whose ``*.sslip.io`` names resolve to 127.0.0.1 without
a DNS server, as the quickstart's and the console's browser tests need.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CHROMIUM", "TIMEOUT_MS", "chromium_page", "screenshots", "skip_or_fail"]

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 60_000


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason`` on a developer's machine; under CI=true a missing piece fails."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: every browser test must run)")
    pytest.skip(reason)


def screenshots(tmp_path: Path) -> Path:
    """Where a browser test saves its screenshots: the test's tmp directory, or
    ``$CONSOLE_SCREENSHOTS`` when set (``CONSOLE_SCREENSHOTS=docs/images`` refreshes the
    ones the docs show)."""
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def chromium_page(timeout_ms: int = TIMEOUT_MS) -> Iterator[Any]:
    """A fresh browser context's page; the browser is closed on the way out."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("Playwright's Python client is not installed; run `make browser`")
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        skip_or_fail("Debian's chromium is not installed; run `make browser`")
    executable = str(CHROMIUM) if CHROMIUM.exists() else str(shutil.which("chromium"))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--host-resolver-rules=MAP *.sslip.io 127.0.0.1", "--no-proxy-server"],
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            browser.close()
