"""Any object, Apply, Events and the node panel in headless Chromium against a real
`wonderland up` running the quickstart: apply a document with a bad field and see the
error at its line, apply a good one, edit it, delete it after confirming; an axe-core scan
of every console page (no serious or critical violation).

Screenshots go to the test's tmp directory, or to ``$CONSOLE_SCREENSHOTS`` when set
(``CONSOLE_SCREENSHOTS=docs/images`` refreshes the ones in docs/console.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support.axe import assert_accessible, violations
from _support.browser import chromium_page, screenshots
from _support.daemon import WonderlandDaemon, running_daemon, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 120.0

BAD = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: greeting
data:
  text: hello
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: broken
spec:
  template:
    spec:
      containerConcurrency: lots
      containers:
        - image: example/web:1
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[WonderlandDaemon]:
    wd = WonderlandDaemon.in_tmp(tmp_path)
    wd.env["WONDERLAND_TRACING"] = "on"  # the gateway records spans (the Traces page)
    with running_daemon(wd, "-f", str(REPO / "examples" / "quickstart")):
        yield wd


def _ready(daemon: WonderlandDaemon, name: str) -> bool:
    result = daemon.run("get", "ksvc", name, "-o", "json")
    if result.returncode != 0:
        return False
    conds = json.loads(result.stdout).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def test_apply_edit_delete_events_and_axe_on_every_page(
    daemon: WonderlandDaemon, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    shots = screenshots(tmp_path)
    wait_for(lambda: _ready(daemon, "hello"), READY_TIMEOUT, "ksvc hello Ready", log=daemon.log)
    url = json.loads((daemon.home / "daemon.json").read_text())["console"]["url"]
    token = (daemon.home / "token").read_text().strip()

    page: Any
    with chromium_page() as page:
        page.goto(url + "/")
        expect(page.get_by_label("Platform token")).to_be_visible()
        assert_accessible(page, "Sign in")
        page.get_by_label("Platform token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
        expect(page.locator("#node-cpu")).to_contain_text("CPUs")
        expect(page.locator("#node-gpu")).not_to_be_empty()
        expect(page.locator("#live-status")).to_have_text("live")
        assert_accessible(page, "Overview")
        page.screenshot(path=str(shots / "console-overview.png"), full_page=True)

        for name, heading in (("Apps", "Apps"), ("Models", "Models"), ("Objects", "Objects")):
            page.get_by_role("link", name=name, exact=True).click()
            expect(page.get_by_role("heading", level=1)).to_have_text(heading)
            assert_accessible(page, name)
        page.screenshot(path=str(shots / "console-objects.png"), full_page=True)
        # the pages no other browser test scans: one kind's list, functions, a 404, the
        # node panel's fragment
        page.goto(url + "/objects/services.serving.knative.dev")
        expect(page.locator("main")).to_contain_text("hello")
        assert_accessible(page, "Object list")
        page.goto(url + "/apps/functions")
        expect(page.get_by_role("heading", level=1)).to_contain_text("Functions")
        assert_accessible(page, "Functions")
        page.goto(url + "/apps/default/no-such-service")
        expect(page.locator("main")).to_contain_text("no Service default/no-such-service")
        assert_accessible(page, "Not found")
        page.goto(url + "/objects")  # the error page has no navigation

        # Apply: a bad field is shown at its line, and nothing is applied
        page.get_by_role("link", name="Apply", exact=True).click()
        page.get_by_label("YAML documents").fill(BAD)
        page.get_by_role("button", name="Apply", exact=True).click()
        summary = page.get_by_role("alert")
        expect(summary).to_contain_text("line 15, column 7")
        expect(summary).to_contain_text("spec.template.spec.containerConcurrency")
        expect(page.locator("#line-15")).to_have_class(re.compile("bad"))
        assert_accessible(page, "Apply with an error")
        page.screenshot(path=str(shots / "console-apply-error.png"), full_page=True)
        assert daemon.run("get", "configmap", "greeting").returncode != 0

        good = BAD.split("---")[0]
        page.get_by_label("YAML documents").fill(good)
        page.get_by_role("button", name="Apply", exact=True).click()
        expect(page.locator("#results")).to_contain_text("✓ created")

        # edit it: the object page's textarea, saved through the platform's validation
        page.get_by_role("link", name="ConfigMap default/greeting").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("greeting")
        editor = page.get_by_label("YAML of ConfigMap greeting")
        editor.fill(editor.input_value().replace("text: hello", "text: hola"))
        page.get_by_role("button", name="Save").click()
        expect(page).to_have_url(re.compile(r"\?saved=configured$"))
        expect(page.locator("pre.yaml")).to_contain_text("text: hola")
        assert_accessible(page, "Object")
        page.screenshot(path=str(shots / "console-object.png"), full_page=True)
        stored = json.loads(daemon.ok("get", "configmap", "greeting", "-o", "json"))
        assert stored["data"] == {"text": "hola"}

        # delete with a confirmation
        page.get_by_role("link", name="Delete ConfigMap greeting…").click()
        page.get_by_label("Type greeting to confirm").fill("greetin")
        page.get_by_role("button", name="Delete ConfigMap greeting").click()  # refused
        expect(page.locator("#confirm-error")).to_contain_text('type the name "greeting"')
        assert_accessible(page, "Delete confirmation")
        page.get_by_label("Type greeting to confirm").fill("greeting")
        page.get_by_role("button", name="Delete ConfigMap greeting").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("deleted")
        assert_accessible(page, "Deleted")
        assert daemon.run("get", "configmap", "greeting").returncode != 0

        # events, filtered; the YAML view
        page.get_by_role("link", name="Events", exact=True).click()
        page.get_by_label("Kind").select_option("Service")
        page.get_by_role("button", name="Filter").click()
        expect(page).to_have_url(re.compile(r"kind=Service"))
        expect(page.locator("#events-command")).to_contain_text("involvedObject.kind=Service")
        assert_accessible(page, "Events")
        page.screenshot(path=str(shots / "console-events.png"), full_page=True)
        page.goto(url + "/yaml/services.serving.knative.dev/default/hello")
        expect(page.locator("pre.yaml")).to_contain_text("kind: Service")
        assert_accessible(page, "YAML")
        page.goto(url + "/apps")
        expect(page.locator("#app-default-hello")).to_be_visible()
        page.screenshot(path=str(shots / "console-apps.png"), full_page=True)

        # the namespace selector: kept in the URL and by the navigation
        page.get_by_label("Namespace filter").fill("default")
        page.get_by_role("button", name="Show", exact=True).click()
        expect(page).to_have_url(re.compile(r"/apps\?namespace=default$"))
        page.get_by_role("link", name="Models", exact=True).click()
        expect(page).to_have_url(re.compile(r"/models\?namespace=default$"))

        # field docs from a refused field; the Experiment form's preview; Traces
        page.get_by_role("link", name="Apply", exact=True).click()
        page.get_by_label("YAML documents").fill(BAD)
        page.get_by_role("button", name="Apply", exact=True).click()
        page.locator("a.field-doc").first.click()
        expect(page.locator("#field-facts")).to_contain_text("integer")
        assert_accessible(page, "Field docs")
        page.get_by_role("link", name="Experiments", exact=True).click()
        page.get_by_role("link", name="New Experiment from a template").click()
        page.get_by_label("Name", exact=True).fill("from-form")
        page.get_by_label("Trials at most", exact=True).fill("many")
        page.get_by_role("button", name="Preview").click()
        expect(page.get_by_role("alert")).to_contain_text("is not a whole number")
        assert_accessible(page, "New Experiment with an error")
        page.get_by_label("Trials at most", exact=True).fill("4")
        page.get_by_label("Early stopping", exact=True).select_option("medianstop")
        page.get_by_label("Start step (optional)").fill("2")
        page.get_by_role("button", name="Preview").click()
        expect(page.locator("#experiment-checked")).to_contain_text("accepts")
        expect(page.locator("#experiment-yaml")).to_contain_text("kind: Experiment")
        expect(page.locator("#experiment-yaml")).to_contain_text("algorithmName: medianstop")
        assert_accessible(page, "New Experiment")
        page.screenshot(path=str(shots / "console-experiment-new.png"), full_page=True)
        # its YAML, multi-line as it was, goes to Apply for what the form does not offer
        page.get_by_role("button", name="Edit this YAML on Apply").click()
        editor = page.get_by_label("YAML documents")
        expect(editor).to_have_value(
            re.compile(r"^apiVersion: kubeflow.org/v1beta1\nkind: Experiment\n")
        )
        expect(page.locator("#results")).to_contain_text("Experiment")
        with httpx.Client(base_url=daemon.gateway, timeout=READY_TIMEOUT) as client:
            r = client.get("/", headers={"host": "hello.default.127.0.0.1.sslip.io"})
            assert r.status_code == 200, r.text
        page.get_by_role("link", name="Traces", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Traces")
        expect(page.locator("#traces tbody a").first).to_be_visible()
        assert_accessible(page, "Traces")
        # the Service's own traces, linked from its page
        page.goto(url + "/apps/default/hello")
        page.get_by_role("link", name="Traces of hello", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Traces of Service default/hello")
        expect(page.locator("#traces tbody a").first).to_be_visible()
        assert_accessible(page, "Traces of a Service")
        page.locator("#traces tbody a").first.click()
        expect(page.locator("#spans")).to_contain_text("gateway")
        assert_accessible(page, "Trace")
        page.goto(url + "/apps")

        # the scan does find what it should: an input without a label fails it
        page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<input>')")
        assert [v["id"] for v in violations(page)] == ["label"]
        with pytest.raises(AssertionError, match="label"):
            assert_accessible(page, "Apps with an unlabelled input")
