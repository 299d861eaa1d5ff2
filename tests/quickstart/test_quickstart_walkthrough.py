"""docs/quickstart.md's release steps on the running quickstart: tag URL, canary, promotion.

This file runs after the other quickstart tests (they share one `make up`): it leaves the
frontend on its second revision.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml
from _support.daemon import wait_for
from quickstart_platform import DOMAIN, REPO, Quickstart

pytestmark = pytest.mark.e2e

STEPS = REPO / "examples" / "conference" / "walkthrough"


def _split(qs: Quickstart, count: int, headers: dict[str, str] | None = None) -> Counter[str]:
    seen: Counter[str] = Counter()
    with httpx.Client(base_url=qs.gateway, timeout=60) as client:
        for _ in range(count):
            answer = client.get("/api/info", headers={**qs.host("frontend"), **(headers or {})})
            assert answer.status_code == 200, answer.text
            seen[answer.json()["revision"]] += 1
    return seen


def _template(path: Path) -> dict[str, object]:
    doc = yaml.safe_load(path.read_text())
    template: dict[str, object] = doc["spec"]["template"]
    return template


def test_steps_share_one_template_that_differs_from_frontend_yaml_by_one_env_var() -> None:
    base = _template(REPO / "examples" / "conference" / "frontend.yaml")
    steps = sorted(STEPS.glob("*.yaml"))
    assert [p.name[0] for p in steps] == ["1", "2", "3", "4"]
    first = _template(steps[0])
    assert all(_template(p) == first for p in steps)
    env = first["spec"]["containers"][0]["env"]  # type: ignore[index]
    extra = [e for e in env if e not in base["spec"]["containers"][0]["env"]]  # type: ignore[index]
    assert extra == [{"name": "CONFERENCE_NAME", "value": "KubeCon China 2023"}]


def test_tag_url_then_canary_50_50_then_10_90_then_promotion(quickstart: Quickstart) -> None:
    qs = quickstart
    qs.ok("apply", "-f", str(STEPS / "1-frontend-tag.yaml"))
    wait_for(
        lambda: qs.ready("revision", "frontend-00002"),
        120,
        "frontend-00002 Ready",
        interval=0.2,
        log=qs.log,
    )
    wait_for(
        lambda: qs.ready("ksvc", "frontend"),
        60,
        "the route to carry both tags",
        interval=0.2,
        log=qs.log,
    )
    status = qs.get("ksvc", "frontend")["status"]
    tags = {t.get("tag"): t for t in status["traffic"]}
    assert (
        tags["version2"]["url"]
        == f"http://version2-frontend.default.{DOMAIN}:{qs.gateway.rpartition(':')[2]}"
    )
    assert tags["version2"]["revisionName"] == "frontend-00002"
    # The main URL stays on the current revision; the tag URL and the tag header reach the new one.
    assert _split(qs, 20) == Counter({"frontend-00001": 20})
    tagged = httpx.get(
        qs.gateway + "/api/info",
        headers={"Host": f"version2-frontend.default.{DOMAIN}"},
        timeout=60,
    ).json()
    assert tagged["revision"] == "frontend-00002"
    assert tagged["conference"] == "KubeCon China 2023"
    assert _split(qs, 10, {"Knative-Serving-Tag": "version2"}) == Counter({"frontend-00002": 10})

    qs.ok("apply", "-f", str(STEPS / "2-frontend-canary-50.yaml"))
    wait_for(
        lambda: [t["percent"] for t in qs.get("ksvc", "frontend")["status"]["traffic"]] == [50, 50],
        60,
        "a 50/50 split",
        interval=0.2,
    )
    half = _split(qs, 200)
    assert set(half) == {"frontend-00001", "frontend-00002"}
    assert 60 <= half["frontend-00002"] <= 140, half

    qs.ok("apply", "-f", str(STEPS / "3-frontend-canary-90.yaml"))
    wait_for(
        lambda: [t["percent"] for t in qs.get("ksvc", "frontend")["status"]["traffic"]] == [10, 90],
        60,
        "a 10/90 split",
        interval=0.2,
    )
    most = _split(qs, 200)
    assert 150 <= most["frontend-00002"] <= 195, most

    qs.ok("apply", "-f", str(STEPS / "4-frontend-promote.yaml"))
    wait_for(
        lambda: _split(qs, 10) == Counter({"frontend-00002": 10}),
        60,
        "all traffic on the latest revision",
        interval=0.2,
    )
    # Applying the same template again made no third revision.
    assert qs.get("ksvc", "frontend")["status"]["latestCreatedRevisionName"] == "frontend-00002"
