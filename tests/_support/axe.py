"""An axe-core accessibility scan of the page a Playwright test has open, in one call.

``assert_accessible(page)`` injects axe-core (the copy that ``axe-playwright-python``
ships, MPL-2.0, test-only) into the page, runs it, and fails the test listing every
violation whose impact is ``serious`` or ``critical`` (Headlamp's e2e a11y helper does the
same), with the rule, its help text and the offending elements::

    from _support.axe import assert_accessible

    page.goto(url)
    assert_accessible(page, "Overview")

Pass ``impacts`` to be stricter (``("moderate", "serious", "critical")``) and ``skip`` to
leave out named rules with a reason in the test. Playwright evaluates the script through
the DevTools protocol, so the console's strict Content-Security-Policy does not block it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from _support.browser import skip_or_fail

__all__ = ["BLOCKING", "assert_accessible", "violations"]

BLOCKING = ("serious", "critical")


def violations(
    page: Any, impacts: Sequence[str] = BLOCKING, skip: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """axe-core's violations on ``page`` with one of ``impacts`` (rules in ``skip`` left out)."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        skip_or_fail("axe-playwright-python is not installed; run `make browser`")
    results = Axe().run(page)
    found = results.response.get("violations") or []
    return [v for v in found if v.get("impact") in impacts and v.get("id") not in skip]


def assert_accessible(
    page: Any, where: str = "", impacts: Sequence[str] = BLOCKING, skip: Sequence[str] = ()
) -> None:
    """Fail when axe-core finds a violation of one of ``impacts`` on ``page``."""
    found = violations(page, impacts, skip)
    if not found:
        return
    lines = [f"axe-core: {len(found)} violation(s) on {where or page.url}:"]
    for v in found:
        lines.append(f"- [{v.get('impact')}] {v.get('id')}: {v.get('help')} ({v.get('helpUrl')})")
        for node in (v.get("nodes") or [])[:5]:
            target = " ".join(map(str, node.get("target") or []))
            lines.append(f"    {target}: {str(node.get('failureSummary', '')).splitlines()[-1:]}")
    raise AssertionError("\n".join(lines))
