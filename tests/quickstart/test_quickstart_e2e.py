"""`make up` as a user runs it, then the talk's flow over HTTP through the gateway."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from _support.daemon import wait_for
from quickstart_platform import DOMAIN, PREDICTOR, REPO, SERVICES, Quickstart

pytestmark = pytest.mark.e2e


def _replicas(qs: Quickstart, revision: str) -> int:
    return int(qs.get("revision", revision).get("status", {}).get("actualReplicas", -1))


def test_make_up_prints_urls_and_get_ksvc_shows_five_ready_services(quickstart: Quickstart) -> None:
    qs = quickstart
    port = qs.gateway.rsplit(":", 1)[1]
    banner = qs.log.read_text()
    assert f"http://frontend.default.{DOMAIN}:{port}/" in banner
    assert f'curl -H "Host: frontend.default.{DOMAIN}" {qs.gateway}/api/agenda' in banner
    assert "inferenceservice.serving.kserve.io/sklearn-iris created" in banner
    rows = [line.split() for line in qs.ok("get", "ksvc").splitlines()]
    assert rows[0][:5] == ["NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY"]
    table = {row[0]: row for row in rows[1:]}
    assert sorted(table) == sorted([*SERVICES, PREDICTOR])
    for name, row in table.items():
        assert row[1:5] == [
            f"http://{name}.default.{DOMAIN}:{qs.gateway.rpartition(':')[2]}",
            f"{name}-00001",
            f"{name}-00001",
            "True",
        ]
    # The Dapr resources the manifests declare are there, under the demo's names.
    components = qs.ok("get", "components", "-o", "name").split()
    assert "component.dapr.io/conference-conference-pubsub" in components
    assert "component.dapr.io/conference-agenda-service-statestore" in components


def test_c4p_scales_to_zero_and_the_proposal_flow_wakes_it(quickstart: Quickstart) -> None:
    qs = quickstart
    wait_for(
        lambda: _replicas(qs, "c4p-service-00001") == 0,
        90,
        "c4p-service to scale to zero",
        interval=0.2,
        log=qs.log,
    )
    assert _replicas(qs, "frontend-00001") == 1  # min-scale "1" keeps the others up
    title = f"Wonderland {uuid.uuid4().hex[:8]}"
    proposal = {"title": title, "author": "Alice", "email": "alice@example.com"}
    # The frontend calls c4p-service on its cluster-local URL; the gateway holds the request
    # while c4p-service starts from zero.
    submitted = qs.request("POST", "frontend", "/api/proposals", json=proposal)
    assert submitted.status_code == 201, submitted.text
    created = submitted.json()
    assert created["status"] == "PENDING" and created["title"] == title
    assert _replicas(qs, "c4p-service-00001") >= 1
    listed = qs.request("GET", "frontend", "/api/proposals").json()
    assert [p["id"] for p in listed if p["title"] == title] == [created["id"]]

    decided = qs.request(
        "POST", "frontend", f"/api/proposals/{created['id']}/decision", json={"approved": True}
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "APPROVED"
    agenda = qs.request("GET", "frontend", "/api/agenda").json()
    assert [a["proposalId"] for a in agenda if a["title"] == title] == [created["id"]]

    # Events travel between apps through the platform's in-memory broker: the author's
    # notification comes from notifications-service's subscription to events-topic.
    def notified() -> list[dict[str, Any]]:
        notes = qs.request("GET", "frontend", "/api/notifications").json()
        return [n for n in notes if n["proposalId"] == created["id"]]

    notes = wait_for(notified, 30, "the author's notification", interval=0.2, log=qs.log)
    assert notes[0]["to"] == "alice@example.com"
    assert notes[0]["title"] == "Your proposal was approved"

    def events() -> set[str]:
        seen = qs.request("GET", "frontend", "/api/events").json()
        kinds = {e["type"] for e in seen if (e.get("payload") or {}).get("title") == title}
        return kinds if len(kinds) == 3 else set()

    assert wait_for(events, 30, "three events at the frontend", interval=0.2, log=qs.log) == {
        "new-proposal",
        "new-agenda-item",
        "proposal-decision",
    }


def test_a_bad_proposal_is_a_400_that_says_what_is_missing(quickstart: Quickstart) -> None:
    qs = quickstart
    answer = qs.request("POST", "frontend", "/api/proposals", json={"title": "no author"})
    assert answer.status_code == 400
    assert "author" in answer.json()["error"]


def test_feature_flags_come_through_the_configuration_api(
    quickstart: Quickstart, tmp_path: Any
) -> None:
    qs = quickstart
    assert qs.request("GET", "frontend", "/api/features").json() == {
        "callForProposalsEnabled": "true",
        "eventsEnabled": "all",
        "debugEnabled": "false",
    }
    original = (REPO / "examples" / "conference" / "feature-flags.yaml").read_text()
    closed = tmp_path / "flags.yaml"
    closed.write_text(
        re.sub(r'callForProposalsEnabled: "true"', 'callForProposalsEnabled: "false"', original)
    )
    qs.ok("apply", "-f", str(closed))
    try:
        wait_for(
            lambda: (
                qs.request("GET", "frontend", "/api/features").json()["callForProposalsEnabled"]
                == "false"
            ),
            30,
            "the frontend to see the flag",
            interval=0.2,
        )
        refused = qs.request(
            "POST", "frontend", "/api/proposals", json={"title": "late", "author": "Bob"}
        )
        assert refused.status_code == 403
        assert "closed" in refused.json()["error"]
    finally:
        qs.ok("apply", "-f", str(REPO / "examples" / "conference" / "feature-flags.yaml"))


def test_the_model_answers_the_talks_v2_request(quickstart: Quickstart) -> None:
    qs = quickstart
    body = json.loads((REPO / "examples" / "conference" / "model" / "inputs-v2.json").read_text())
    answer = qs.request("POST", PREDICTOR, "/v2/models/sklearn-iris/infer", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["model_name"] == "sklearn-iris"
    assert result["outputs"][0]["shape"] == [2]
    assert result["outputs"][0]["data"] == [1, 1]


def test_cluster_local_urls_and_downward_api_env_reach_the_apps(quickstart: Quickstart) -> None:
    qs = quickstart
    info = qs.request("GET", "frontend", "/api/info").json()
    assert info["revision"].startswith("frontend-0000") and info["service"] == "frontend"
    assert info["namespace"] == "default"
    assert info["pod"].startswith(info["revision"] + "-")
