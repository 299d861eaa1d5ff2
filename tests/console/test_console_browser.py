"""The console in headless Chromium against a real `wonderland up` running the quickstart:
sign in, find the quickstart's Service on Overview and Apps, apply a second Service and
watch it appear without a reload (server-sent events), change a traffic split in the
form and see the Service's route and requests through the gateway follow it, open
Models. The screenshot is kept in the
test's tmp directory (``console-apps.png``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support.browser import chromium_page
from _support.daemon import WonderlandDaemon, running_daemon, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 120.0
SECOND = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hola
spec:
  template:
    spec:
      containers:
        - name: user-container
          command: ["python3", "-c"]
          args:
            - |
              import http.server, os
              port = int(os.environ.get("PORT", "8080"))
              handler = http.server.SimpleHTTPRequestHandler
              http.server.ThreadingHTTPServer(("127.0.0.1", port), handler).serve_forever()
          ports:
            - containerPort: 8080
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[WonderlandDaemon]:
    wd = WonderlandDaemon.in_tmp(tmp_path)
    with running_daemon(wd, "-f", str(REPO / "examples" / "quickstart")):
        yield wd


def _ready(daemon: WonderlandDaemon, name: str) -> bool:
    result = daemon.run("get", "ksvc", name, "-o", "json")
    if result.returncode != 0:
        return False
    conds = json.loads(result.stdout).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def test_sign_in_overview_apps_and_a_live_new_service(
    daemon: WonderlandDaemon, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    wait_for(lambda: _ready(daemon, "hello"), READY_TIMEOUT, "ksvc hello Ready", log=daemon.log)
    info = json.loads((daemon.home / "daemon.json").read_text())["console"]
    port = daemon.gateway_port
    assert info["state"] == "running"
    assert info["url"] == f"http://console.127.0.0.1.sslip.io:{port}"
    printed = daemon.ok("console", "--no-open")
    assert f"console: {info['url']}/" in printed and "token" in printed
    token = (daemon.home / "token").read_text().strip()
    assert token not in printed
    assert f"console: {info['url']}" in daemon.log.read_text()  # the banner

    page: Any
    with chromium_page() as page:
        page.goto(info["url"] + "/apps")
        expect(page).to_have_url(re.compile(r"/signin\?next=/apps$"))
        page.get_by_label("Platform token").fill("not-the-token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("not the platform's token")

        page.get_by_label("Platform token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/apps$"))
        cookies = {c["name"]: c for c in page.context.cookies()}
        session = cookies["wonderland_console"]
        assert session["httpOnly"] and session["sameSite"] == "Strict"
        assert token not in session["value"]

        page.get_by_role("link", name="Overview").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
        services = page.locator('#counts li[data-resource="services.serving.knative.dev"]')
        expect(services.locator(".tile-n")).to_have_text("1")
        expect(page.locator("#live-status")).to_have_text("live")

        page.get_by_role("link", name="Apps").click()
        hello = page.locator("#app-default-hello")
        expect(hello.get_by_role("heading", level=2)).to_contain_text("Ready")
        expect(hello.locator('tr[data-revision="hello-00001"]')).to_contain_text("100%")
        expect(page.locator("#live-status")).to_have_text("live")

        page.evaluate("window.__notReloaded = true")
        daemon.ok("apply", "-f", "-", stdin=SECOND)
        hola = page.locator("#app-default-hola")
        expect(hola).to_be_visible()  # arrived over the stream
        expect(hola.get_by_role("heading", level=2)).to_contain_text(
            "Ready", timeout=int(READY_TIMEOUT * 1000)
        )
        assert page.evaluate("window.__notReloaded === true")

        hello.get_by_role("link", name="YAML of hello").first.click()
        expect(page.locator("pre.yaml")).to_contain_text("kind: Service")
        page.go_back()
        expect(page.locator("#app-default-hola")).to_be_visible()

        # the traffic form (one, opened from the Service): a refused split says why next
        # to the form, a good one is an update of the Service that the page then shows
        # (the route's status, live)
        hello.get_by_role("link", name="Edit the traffic split of hello").click()
        form = page.locator("#traffic-default-hello")
        form.get_by_label("Percent for latest revision").fill("90")
        form.get_by_role("button", name="Save traffic split").click()
        expect(form.get_by_role("alert")).to_contain_text("Traffic targets sum to 90, want 100")
        form = page.locator("#traffic-default-hello")
        form.get_by_label("Percent for latest revision").fill("0")
        form.get_by_label("Percent for hello-00001").fill("100")
        form.get_by_label("Tag for hello-00001").fill("pinned")
        form.get_by_role("button", name="Save traffic split").click()
        expect(page).to_have_url(re.compile(r"/apps\?namespace=default&q=hello#app-default-hello$"))
        expect(page.locator("#app-default-hello .traffic-summary")).to_have_text(
            "hello-00001 100% (tag pinned)", timeout=int(READY_TIMEOUT * 1000)
        )
        ksvc = json.loads(daemon.ok("get", "ksvc", "hello", "-o", "json"))
        assert ksvc["spec"]["traffic"] == [
            {"revisionName": "hello-00001", "percent": 100, "tag": "pinned"}
        ]

        # a second revision (a template change), then a 50/50 split set in the form:
        # requests through the gateway reach both revisions
        spec = ksvc["spec"]
        spec["template"].setdefault("metadata", {})["annotations"] = {"console/step": "2"}
        second = {"apiVersion": ksvc["apiVersion"], "kind": "Service"}
        second["metadata"] = {"name": "hello", "namespace": "default"}
        daemon.ok("apply", "-f", "-", stdin=json.dumps({**second, "spec": spec}))
        hello2 = hello.locator('tr[data-revision="hello-00002"]')
        expect(hello2).to_contain_text("Ready", timeout=int(READY_TIMEOUT * 1000))
        hello.get_by_role("link", name="Edit the traffic split of hello").click()
        form = page.locator("#traffic-default-hello")
        form.get_by_label("Percent for latest revision").fill("50")
        form.get_by_label("Percent for hello-00001").fill("50")
        form.get_by_role("button", name="Save traffic split").click()
        expect(page.locator("#app-default-hello .traffic-summary")).to_have_text(
            "hello-00001 50% (tag pinned), hello-00002 50%", timeout=int(READY_TIMEOUT * 1000)
        )
        seen: dict[str, int] = {}
        with httpx.Client(base_url=daemon.gateway, timeout=60) as client:
            for _ in range(60):
                r = client.get("/", headers={"host": "hello.default.127.0.0.1.sslip.io"})
                assert r.status_code == 200, r.text
                revision = r.text.strip().rsplit(" ", 1)[-1]
                seen[revision] = seen.get(revision, 0) + 1
        assert set(seen) == {"hello-00001", "hello-00002"}, seen
        assert min(seen.values()) >= 10, seen  # 50/50 of 60: far from all on one side

        page.screenshot(path=str(tmp_path / "console-apps.png"), full_page=True)
        page.get_by_role("link", name="Models").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Models")
        expect(page.locator("#models-empty")).to_be_visible()
    assert (tmp_path / "console-apps.png").stat().st_size > 0
