"""The Service and InferenceService pages in headless Chromium against a real
`wonderland up` (the quickstart plus the iris InferenceService of examples/inference):
open a Service from Apps, send requests through the gateway and watch its request-rate
chart get points without a reload, follow a Pod's log, then open the model from Models,
fill the "try it" form built from its V2 metadata and see the model's answer, latency and
curl command. Screenshots are kept in the test's tmp directory (``console-service.png``,
``console-model.png``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support.axe import assert_accessible
from _support.browser import chromium_page, screenshots
from _support.daemon import WonderlandDaemon, daemon_env, free_port, running_daemon, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 180.0


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[WonderlandDaemon]:
    env = daemon_env(tmp_path, gateway_port=free_port(), WONDERLAND_METRICS_SCRAPE_SECONDS="1")
    wd = WonderlandDaemon(tmp_path / "home", env, tmp_path / "daemon.log")
    with running_daemon(wd, "-f", str(REPO / "examples" / "quickstart")):
        yield wd


def _train(dest: Path) -> Path:
    sys.path.insert(0, str(REPO / "examples" / "inference"))
    try:
        from train import train
    finally:
        sys.path.pop(0)
    train(dest)
    return dest


def _ready(daemon: WonderlandDaemon, kind: str, name: str) -> bool:
    result = daemon.run("get", kind, name, "-o", "json")
    if result.returncode != 0:
        return False
    conds = json.loads(result.stdout).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def test_service_charts_and_logs_then_try_a_model(daemon: WonderlandDaemon, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    model = _train(tmp_path / "model")
    daemon.ok(
        "apply",
        "-f",
        "-",
        stdin=json.dumps(
            {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceService",
                "metadata": {"name": "sklearn-iris", "namespace": "default"},
                "spec": {
                    "predictor": {
                        "model": {
                            "modelFormat": {"name": "sklearn"},
                            "storageUri": f"file://{model}",
                        }
                    }
                },
            }
        ),
    )
    wait_for(lambda: _ready(daemon, "ksvc", "hello"), READY_TIMEOUT, "ksvc hello", log=daemon.log)
    info = json.loads((daemon.home / "daemon.json").read_text())["console"]
    token = (daemon.home / "token").read_text().strip()
    timeout = int(READY_TIMEOUT * 1000)

    page: Any
    shots = screenshots(tmp_path)
    with chromium_page() as page:
        page.goto(info["url"] + "/apps")
        page.get_by_label("Platform token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="Charts, autoscaler, logs and events of hello").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("hello")
        expect(page.locator("#live-status")).to_have_text("live")
        page.get_by_role("link", name="5m").click()
        expect(page.get_by_role("link", name="5m")).to_have_attribute("aria-current", "true")
        page.evaluate("window.__notReloaded = true")

        # requests through the gateway: the request-rate chart gets points, live
        with httpx.Client(base_url=daemon.gateway, timeout=60) as client:

            def requests_drawn() -> bool:
                for _ in range(20):
                    r = client.get("/", headers={"host": "hello.default.127.0.0.1.sslip.io"})
                    assert r.status_code == 200, r.text
                figure = page.locator("#chart-requests-figure")
                return int(figure.get_attribute("data-points") or 0) > 0

            wait_for(requests_drawn, 90, "request-rate points on the chart", log=daemon.log)
        expect(page.locator("#chart-requests canvas")).to_have_count(1)
        # the autoscaler's view of the revision (the serving system's ScalerSource)
        scaler = page.locator('#scaler tr[data-revision="hello-00001"]')
        expect(scaler).to_contain_text("concurrency")
        expect(page.locator("#chart-requests-figure .chart-summary")).to_contain_text("hello-00001")
        assert page.evaluate("window.__notReloaded === true")

        # a Pod's log, followed over its own stream
        follow = page.get_by_role("button", name="Follow user-container").first
        follow.click()
        expect(page.locator("#log-panel")).to_be_visible()
        expect(page.locator("#log-title")).to_contain_text("(following)")
        with httpx.Client(base_url=daemon.gateway, timeout=60) as client:
            client.get("/", headers={"host": "hello.default.127.0.0.1.sslip.io"})
        page.screenshot(path=str(shots / "console-service.png"), full_page=True)
        assert_accessible(page, "Service")

        # the model: a form from its V2 metadata, the answer, the latency, curl
        wait_for(
            lambda: _ready(daemon, "isvc", "sklearn-iris"),
            READY_TIMEOUT,
            "isvc sklearn-iris",
            log=daemon.log,
        )
        page.get_by_role("link", name="Models").click()
        page.get_by_role("link", name="sklearn-iris", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("sklearn-iris")
        field = page.get_by_label("input-0")
        expect(field).to_be_visible(timeout=timeout)
        field.fill("6.8, 2.8, 4.8, 1.4\n6.0, 3.4, 4.5, 1.6")
        page.get_by_role("button", name="Put these into the JSON").click()
        request = json.loads(page.get_by_label("V2 request (JSON)").input_value())
        assert request["inputs"][0]["shape"] == [2, 4]
        page.get_by_role("button", name="Send request").click()
        expect(page.locator("#try-summary")).to_contain_text("HTTP 200 in", timeout=timeout)
        answer = json.loads(page.locator("#try-answer").text_content() or "{}")
        assert answer["model_name"] == "sklearn-iris"
        assert answer["outputs"][0]["data"] == [1, 1]
        expect(page.locator("#try-curl")).to_contain_text(
            "Host: sklearn-iris.default.127.0.0.1.sslip.io"
        )
        page.screenshot(path=str(shots / "console-model.png"), full_page=True)
        assert_accessible(page, "InferenceService")
    assert (shots / "console-service.png").stat().st_size > 0
    assert (shots / "console-model.png").stat().st_size > 0
