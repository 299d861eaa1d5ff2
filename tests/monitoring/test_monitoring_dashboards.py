"""Every query of every shipped Grafana dashboard, run against Debian's real Prometheus
scraping `wonderland up --prometheus` after traffic through the talk's conference (Knative
Services with Dapr sidecars using state and pub/sub, a KServe InferenceService) and a
TrainJob that reports its progress and metrics: Prometheus accepts each one and each
returns data."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _support.daemon import WonderlandDaemon, wait_for
from prometheus_testing import DOMAIN, PromClient, info, prometheus_daemon, require_prometheus

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
]

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
# what Grafana puts in place of a variable set to "All" (allValue) and of $__rate_interval
# (at least four scrape intervals)
ALL = ".*"
RATE_INTERVAL = "30s"

TRAINJOB = {
    "apiVersion": "trainer.kubeflow.org/v1alpha1",
    "kind": "TrainJob",
    "metadata": {"name": "reporter", "namespace": "default"},
    "spec": {
        "runtimeRef": {"name": "torch-distributed"},
        "trainer": {
            "command": [
                sys.executable,
                "-c",
                textwrap.dedent(
                    """
                    import json, os, ssl, time, urllib.request
                    from datetime import datetime, timezone
                    url = os.environ["KUBEFLOW_TRAINER_SERVER_URL"]
                    token = open(os.environ["KUBEFLOW_TRAINER_SERVER_TOKEN"]).read().strip()
                    tls = ssl.create_default_context(cafile=os.environ["KUBEFLOW_TRAINER_SERVER_CA_CERT"])
                    for step in range(1, 121):
                        body = {"trainerStatus": {"progressPercentage": min(step, 99),
                                "metrics": [{"name": "loss", "value": str(1 / step)}],
                                "lastUpdatedTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}}
                        request = urllib.request.Request(url, json.dumps(body).encode(), method="POST",
                            headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
                        urllib.request.urlopen(request, context=tls).read()
                        time.sleep(1)
                    """
                ),
            ]
        },
    },
}


# one Katib trial whose metric the StdOut collector reads from the log
EXPERIMENT = {
    "apiVersion": "kubeflow.org/v1beta1",
    "kind": "Experiment",
    "metadata": {"name": "tiny", "namespace": "default"},
    "spec": {
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "algorithm": {"algorithmName": "random"},
        "parallelTrialCount": 1,
        "maxTrialCount": 1,
        "parameters": [
            {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.9"}}
        ],
        "trialTemplate": {
            "primaryContainerName": "main",
            "trialParameters": [{"name": "x", "reference": "x"}],
            "trialSpec": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "python",
                                    "command": [
                                        sys.executable,
                                        "-c",
                                        "print('loss=${trialParameters.x}')",
                                    ],
                                }
                            ],
                        }
                    }
                },
            },
        },
    },
}

# KServe scrapes a model server only when the InferenceService asks for it
SCRAPED_ISVC = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {
        "name": "iris-scraped",
        "namespace": "default",
        "annotations": {"serving.kserve.io/enable-prometheus-scraping": "true"},
    },
    "spec": {
        "predictor": {
            "model": {
                "modelFormat": {"name": "sklearn"},
                "storageUri": "file://./examples/inference/model",
            }
        }
    },
}


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) for every target of every panel."""
    out = []
    for path in sorted(GRAFANA.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((path.name, panel["title"], target["expr"]))
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, variable, PromQL) for every ``label_values(metric, label)`` variable:
    ``group by (label) (metric)`` asks Prometheus the same."""
    out = []
    for path in sorted(GRAFANA.glob("*.json")):
        for var in json.loads(path.read_text())["templating"]["list"]:
            if var["type"] != "query":
                continue
            found = re.fullmatch(r"label_values\((.*), *(\w+)\)", var["query"]["query"])
            assert found, (path.name, var["name"], var["query"])
            out.append((path.name, var["name"], f"group by ({found[2]}) ({found[1]})"))
    return out


def substitute(expr: str) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    return re.sub(r"\$\{?([A-Za-z_]\w*)\}?", ALL, expr)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WonderlandDaemon]:
    require_prometheus()
    subprocess.run([sys.executable, str(REPO / "examples" / "inference" / "train.py")], check=True)
    d = prometheus_daemon(tmp_path_factory.mktemp("dashboards"))
    d.cwd = REPO  # the InferenceService's storageUri is file://./examples/inference/model
    try:
        d.start("--prometheus", "-f", str(REPO / "examples" / "conference"), timeout=120)
        d.ok("apply", "-f", "-", stdin=json.dumps(TRAINJOB))
        d.ok("apply", "-f", "-", stdin=json.dumps(SCRAPED_ISVC))
        d.ok("apply", "-f", "-", stdin=json.dumps(EXPERIMENT))
        yield d
    finally:
        d.stop()


def _traffic(gateway: str) -> None:
    def host(service: str) -> dict[str, str]:
        return {"Host": f"{service}.default.{DOMAIN}"}

    inputs = (REPO / "examples" / "conference" / "model" / "inputs-v2.json").read_bytes()
    with httpx.Client(base_url=gateway, timeout=60) as client:
        assert client.get("/api/agenda", headers=host("frontend")).status_code == 200
        proposal = {"title": "Prometheus", "author": "Alice", "email": "alice@example.com"}
        posted = client.post("/api/proposals", headers=host("frontend"), json=proposal)
        assert posted.status_code < 300, posted.text
        for model in ("sklearn-iris", "iris-scraped"):
            infer = client.post(
                f"/v2/models/{model}/infer",
                headers={**host(f"{model}-predictor"), "Content-Type": "application/json"},
                content=inputs,
            )
            assert infer.status_code == 200, infer.text


def test_every_dashboard_query_is_accepted_and_returns_data_after_traffic(
    platform: WonderlandDaemon,
) -> None:
    prom = PromClient(info(platform)["prometheus"]["url"])

    def ready() -> bool:
        try:
            _traffic(platform.gateway)
        except (AssertionError, httpx.HTTPError):
            return False
        return True

    wait_for(ready, 180, "the conference and the model to answer", interval=1, log=platform.log)
    queries = dashboard_queries() + variable_queries()
    assert len(queries) > 40
    for name, title, expr in queries:
        answer = prom.query(substitute(expr))
        assert answer["status"] == "success", (name, title, expr, answer)

    empty: list[tuple[str, str, str]] = []

    def all_have_data() -> bool:
        nonlocal empty
        _traffic(platform.gateway)
        empty = [q for q in queries if not prom.query(substitute(q[2]))["data"]["result"]]
        return not empty

    with contextlib.suppress(AssertionError):  # the assertion below names what is missing
        wait_for(all_have_data, 60, "data for every query", interval=2)
    assert not empty, (
        "queries with no data after traffic:\n"
        + "\n".join(f"  {name} / {title}: {expr}" for name, title, expr in empty)
        + "\n\n"
        + platform.run("describe", "trainjob", "reporter").stdout
        + platform.run("logs", "trainjob/reporter").stdout[-2000:]
    )
