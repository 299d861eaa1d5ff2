"""The frontend page in headless Chromium: submit, approve, see the agenda and the notification.

Uses Debian's ``chromium`` with Playwright's Python client (``make browser`` installs both).
The screenshot is kept in ``test-artifacts/quickstart-frontend.png``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _support.browser import chromium_page
from quickstart_platform import DOMAIN, REPO, Quickstart

pytestmark = pytest.mark.e2e

ARTIFACTS = REPO / "test-artifacts"
TIMEOUT_MS = 60_000


@pytest.fixture
def page(quickstart: Quickstart) -> Iterator[Any]:
    with chromium_page(TIMEOUT_MS) as tab:
        yield tab


def test_frontend_page_submit_approve_agenda_and_notification(
    quickstart: Quickstart, page: Any
) -> None:
    from playwright.sync_api import expect

    port = quickstart.gateway.rsplit(":", 1)[1]
    title = f"Adventures in Platform Building {uuid.uuid4().hex[:6]}"
    page.goto(f"http://frontend.default.{DOMAIN}:{port}/")
    expect(page.locator("#revision")).to_have_text(re.compile(r"^frontend-0000\d$"))
    expect(page.locator("#flags")).to_contain_text("callForProposalsEnabled=true")
    expect(page.locator("#debug")).to_be_hidden()  # debugEnabled is "false"

    page.fill("#title", title)
    page.fill("#author", "Mauricio")
    page.fill("#email", "mauricio@example.com")
    page.fill("#description", "Knative, Dapr and KServe on one machine.")
    page.click("#submit")
    expect(page.locator("#message")).to_contain_text("waiting for review")

    row = page.locator("#proposals li", has_text=title)
    expect(row).to_contain_text("PENDING")
    row.locator("button.approve").click()
    expect(page.locator("#message")).to_contain_text("Approved")
    expect(row).to_contain_text("APPROVED")

    expect(page.locator("#agenda")).to_contain_text(title)
    notification = page.locator("#notifications li", has_text=title)
    expect(notification).to_contain_text("Your proposal was approved")
    expect(notification).to_contain_text("mauricio@example.com")
    expect(page.locator("#events")).to_contain_text("proposal-decision")

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "quickstart-frontend.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
