"""Any object in the console, on a real socket: the Apply page (dry run, created/configured/
unchanged, errors at their line, nothing kept from a refused submission), editing one
object, deleting it with a confirmation, its events, the Events page with filters and the
Overview's node panel."""

from __future__ import annotations

import contextlib
import html
import importlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from _support.daemon import wait_until
from console_objects import add_broken, add_service

import wonderland.platform
from wonderland.console.live import LiveFeed
from wonderland.console.server import ConsoleServer
from wonderland.console.views import HubMetrics
from wonderland.errors import NotFoundError
from wonderland.monitoring.hub import MetricsHub
from wonderland.store import Store

TOKEN = "objects-platform-token"

TWO = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: hello
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - image: example/web:1
"""

# the second document's containerConcurrency is not a number: line 15, column 7
BAD_FIELD = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: kept-out
data:
  a: b
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


@dataclass
class Console:
    store: Store
    url: str

    @property
    def origin(self) -> dict[str, str]:
        return {"origin": self.url}

    @contextlib.asynccontextmanager
    async def signed_in(self) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            r = await client.post(
                "/signin", data={"token": TOKEN, "next": "/"}, headers=self.origin
            )
            assert r.status_code == 303, r.text
            yield client


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    for name in wonderland.platform.PLUGINS:
        importlib.import_module(name)  # every kind the platform registers
    store = Store.open(tmp_path)
    server = ConsoleServer(store, lambda: TOKEN, HubMetrics(MetricsHub()))
    server.feed = LiveFeed(store, heartbeat=0.5)
    await server.start()
    try:
        yield Console(store, server.status.url)
    finally:
        await server.stop()
        store.close()


def _exists(store: Store, resource: str, name: str) -> bool:
    try:
        store.get(resource, "default", name)
    except NotFoundError:
        return False
    return True


def _table(html: str, table_id: str) -> str:
    start = html.index(f'<table id="{table_id}">')
    return html[start : html.index("</table>", start)]


async def test_apply_checks_first_then_creates_configures_and_leaves_unchanged(
    console: Console,
) -> None:
    async with console.signed_in() as client:
        r = await client.get("/apply")
        assert r.status_code == 200 and '<label for="yaml-apply">' in r.text
        r = await client.post("/apply", data={"yaml": TWO, "mode": "check"}, headers=console.origin)
        assert r.status_code == 200, r.text
        assert r.text.count("✓ created (dry run)") == 2
        assert "kubectl apply --dry-run=server" in r.text
        assert not _exists(console.store, "configmaps", "settings")  # a dry run keeps nothing
        assert not _exists(console.store, "services.serving.knative.dev", "web")

        r = await client.post("/apply", data={"yaml": TWO, "mode": "apply"}, headers=console.origin)
        assert r.status_code == 200 and r.text.count("✓ created") == 2
        assert 'href="/object/configmaps/default/settings"' in r.text
        assert console.store.get("configmaps", "default", "settings")["data"] == {
            "greeting": "hello"
        }
        r = await client.post("/apply", data={"yaml": TWO, "mode": "apply"}, headers=console.origin)
        assert r.text.count("✓ unchanged") == 2
        changed = TWO.replace("greeting: hello", "greeting: hola")
        r = await client.post(
            "/apply", data={"yaml": changed, "mode": "check"}, headers=console.origin
        )
        assert "✓ configured (dry run)" in r.text and "✓ unchanged (dry run)" in r.text
        assert "-  greeting: hello" in r.text and "+  greeting: hola" in r.text  # the diff
        stored = console.store.get("configmaps", "default", "settings")
        assert stored["data"] == {"greeting": "hello"}


async def test_a_bad_field_is_shown_at_its_line_and_nothing_is_applied(console: Console) -> None:
    async with console.signed_in() as client:
        rv = console.store.resource_version
        r = await client.post(
            "/apply", data={"yaml": BAD_FIELD, "mode": "apply"}, headers=console.origin
        )
        assert r.status_code == 422, r.text
        assert "line 15, column 7" in r.text
        assert "spec.template.spec.containerConcurrency" in r.text
        assert '<li id="line-15" class="bad">' in r.text  # the text, marked at that line
        assert 'href="#line-15"' in r.text and 'aria-invalid="true"' in r.text
        assert "containerConcurrency: lots" in r.text  # the submission comes back to fix
        assert "passes the check (would be created); not applied" in r.text
        # the valid first document was not applied either: the dry run refused the set
        assert not _exists(console.store, "configmaps", "kept-out")
        assert console.store.resource_version == rv

        r = await client.post(
            "/apply",
            data={"yaml": "kind: ConfigMap\nmetadata: [unclosed\n", "mode": "apply"},
            headers=console.origin,
        )
        assert r.status_code == 400 and "malformed YAML" in r.text and "line 3" in r.text
        unknown = "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g\n"
        r = await client.post(
            "/apply", data={"yaml": unknown, "mode": "apply"}, headers=console.origin
        )
        assert r.status_code == 422 and "line 2, column 1" in r.text and "Gadget" in r.text
        r = await client.post(
            "/apply", data={"yaml": "  \n", "mode": "apply"}, headers=console.origin
        )
        assert r.status_code == 400 and "empty" in r.text
        # the cross-site guard still holds for the new forms
        r = await client.post("/apply", data={"yaml": TWO, "mode": "apply"})
        assert r.status_code == 403
        r = await client.post("/apply", data={"yaml": "x" * (600 * 1024)}, headers=console.origin)
        assert r.status_code == 413
        assert console.store.resource_version == rv


async def test_a_refused_field_links_to_its_docs(console: Console) -> None:
    async with console.signed_in() as client:
        r = await client.post(
            "/apply", data={"yaml": BAD_FIELD, "mode": "check"}, headers=console.origin
        )
        assert r.status_code == 422
        link = re.search(r'class="field-doc" href="([^"]+)"', r.text)
        assert link is not None, r.text
        docs = await client.get(link.group(1).replace("&amp;", "&"))
        assert docs.status_code == 200
        assert (
            "<h1>Service" in docs.text and ".spec.template.spec.containerConcurrency" in docs.text
        )
        assert "<code>integer</code>" in docs.text and "kubectl explain service.spec" in docs.text
        # the upstream CRD's description of the field, and whose it is
        assert 'id="field-description">ContainerConcurrency specifies the maximum' in docs.text
        assert "knative/serving knative-v1.21.3 (upstream)" in docs.text
        # a list's page shows its items' fields, each linked one level down
        traffic = await client.get(
            "/fields?apiVersion=serving.knative.dev/v1&kind=Service&field=spec.traffic"
        )
        assert "<code>[]object</code>" in traffic.text
        assert 'field=spec.traffic%5B0%5D.percent">percent</a>' in traffic.text
        assert "<td>Tag is optionally used to expose a dedicated url" in traffic.text
        typo = await client.get(
            "/fields?apiVersion=serving.knative.dev/v1&kind=Service&field=spec.trafic"
        )
        assert typo.status_code == 200 and "has no field <code>trafic</code>" in typo.text
        assert 'field=spec.traffic">traffic</a>' in typo.text
        upstream = await client.get(
            "/fields?apiVersion=apps/v1&kind=Deployment&field=spec.replicas"
        )
        assert "kubernetes/kubernetes" in upstream.text and "<code>integer</code>" in upstream.text
        assert 'id="field-description">Number of desired pods.' in upstream.text
        # a kind whose upstream schema has no descriptions says so
        bare = await client.get(
            "/fields?apiVersion=serving.kserve.io/v1beta1&kind=InferenceService&field=spec"
        )
        assert 'id="field-no-description"' in bare.text
        r = await client.get("/fields?apiVersion=example.com/v1&kind=Gadget")
        assert r.status_code == 404 and "wonderland api-resources" in r.text
        assert (await client.get("/fields")).status_code == 400
        # an object's page links its fields' docs
        add_service(console.store)
        page = (await client.get("/object/services.serving.knative.dev/default/hello")).text
        assert 'id="field-docs"' in page and 'field=spec.template">spec.template</a>' in page


async def test_edit_an_object_refused_edits_change_nothing(console: Console) -> None:
    add_service(console.store)
    url = "/object/services.serving.knative.dev/default/hello"
    async with console.signed_in() as client:
        r = await client.get(url)
        assert r.status_code == 200
        assert "kubectl edit services.serving.knative.dev hello -n default" in r.text
        assert "kubectl get services.serving.knative.dev hello -n default -o yaml" in r.text
        assert "kubectl delete services.serving.knative.dev hello -n default" in r.text
        text = re.search(r'<textarea id="yaml-edit"[^>]*>(.*?)</textarea>', r.text, re.S)
        assert text is not None
        edited = text.group(1).replace("&#34;", '"').replace("&#39;", "'")
        assert "resourceVersion:" in edited and "status:" not in edited
        before = console.store.get("services.serving.knative.dev", "default", "hello")

        bad = edited.replace("image: example/hello:2", "image: example/hello:2\n        bogus: 1")
        r = await client.post(url, data={"action": "apply", "yaml": bad}, headers=console.origin)
        assert r.status_code == 422, r.text
        line = bad.splitlines().index("        bogus: 1") + 1
        assert f"line {line}, column 9" in r.text and "bogus" in r.text
        other = edited.replace("name: hello", "name: other", 1)
        r = await client.post(url, data={"action": "apply", "yaml": other}, headers=console.origin)
        assert r.status_code == 400 and "names another object" in r.text
        after = console.store.get("services.serving.knative.dev", "default", "hello")
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

        good = edited.replace("image: example/hello:2", "image: example/hello:3")
        r = await client.post(url, data={"action": "apply", "yaml": good}, headers=console.origin)
        assert r.status_code == 303 and r.headers["location"] == url + "?saved=configured"
        saved = console.store.get("services.serving.knative.dev", "default", "hello")
        containers = saved["spec"]["template"]["spec"]["containers"]
        assert containers[0]["image"] == "example/hello:3"
        assert saved["status"] == before["status"]  # the status is the controllers'
        # the same text again carries a resourceVersion that is no longer current
        r = await client.post(url, data={"action": "apply", "yaml": good}, headers=console.origin)
        assert r.status_code == 409 and "modified" in r.text


async def test_delete_asks_for_the_name_first(console: Console) -> None:
    add_service(console.store)
    url = "/object/services.serving.knative.dev/default/hello"
    async with console.signed_in() as client:
        r = await client.get(url + "?delete=1")
        assert r.status_code == 200 and '<label for="confirm">' in r.text
        r = await client.post(url, data={"action": "delete"}, headers=console.origin)
        assert r.status_code == 400 and "type the name &#34;hello&#34;" in r.text
        r = await client.post(
            url, data={"action": "delete", "confirm": "hallo"}, headers=console.origin
        )
        assert r.status_code == 400
        assert _exists(console.store, "services.serving.knative.dev", "hello")
        r = await client.post(url, data={"action": "delete", "confirm": "hello"})  # no Origin
        assert r.status_code == 403
        r = await client.post(
            url, data={"action": "delete", "confirm": "hello"}, headers=console.origin
        )
        assert r.status_code == 200 and "Service hello deleted" in r.text
        assert not _exists(console.store, "services.serving.knative.dev", "hello")
        # its revisions were owned by nothing here, so they stay; the Service is gone
        assert (await client.get(url)).status_code == 404
        r = await client.post(
            url, data={"action": "delete", "confirm": "hello"}, headers=console.origin
        )
        assert r.status_code == 404


async def test_secrets_never_show_their_values(console: Console) -> None:
    console.store.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "default"},
            "stringData": {"password": "hunter2"},
        }
    )
    async with console.signed_in() as client:
        r = await client.get("/object/secrets/default/creds")
        assert r.status_code == 200
        assert "hunter2" not in r.text and "aHVudGVyMg" not in r.text
        assert "(hidden)" in r.text and 'id="secret-note"' in r.text
        assert "<textarea" not in r.text
        masked = (
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: default\n"
            "data:\n  password: (hidden)\n"
        )
        r = await client.post(
            "/object/secrets/default/creds",
            data={"action": "apply", "yaml": masked},
            headers=console.origin,
        )
        assert r.status_code == 400 and "values are hidden" in r.text
        changed = masked.replace("(hidden)", "bmV3")  # "new"
        r = await client.post(
            "/apply", data={"yaml": changed, "mode": "check"}, headers=console.origin
        )
        assert r.status_code == 200 and "bmV3" not in r.text.split("<form")[0]
        assert "(hidden, " in r.text  # the diff says a key changed, not how
    stored = console.store.get("secrets", "default", "creds")
    assert stored["data"]["password"] == "aHVudGVyMg=="


async def test_events_page_filters_and_object_events(console: Console) -> None:
    add_service(console.store)
    add_broken(console.store)
    async with console.signed_in() as client:
        r = await client.get("/events")
        assert r.status_code == 200 and "2 events" in r.text
        assert "kubectl get events -A" in r.text
        r = await client.get("/events?type=Warning")
        rows = _table(r.text, "events")
        assert "1 event." in r.text and "ModelLoadFailed" in rows and "Created" not in rows
        assert "--field-selector type=Warning" in r.text
        r = await client.get("/events?kind=Service&reason=Created")
        rows = _table(r.text, "events")
        assert "1 event." in r.text and "Created Configuration hello" in rows
        assert "ModelLoadFailed" not in rows
        assert "<option selected>Created</option>" in r.text  # the filter stays chosen
        r = await client.get("/events?namespace=elsewhere")
        assert "0 events" in r.text
        r = await client.get("/object/inferenceservices.serving.kserve.io/default/iris")
        rows = _table(r.text, "object-events")
        assert "ModelLoadFailed" in rows and "Created Configuration" not in rows
        assert "kubectl events --for inferenceservice/iris -n default" in r.text


async def test_kinds_lists_and_the_node_panel(console: Console) -> None:
    add_service(console.store)
    async with console.signed_in() as client:
        r = await client.get("/objects")
        assert r.status_code == 200
        assert 'data-resource="services.serving.knative.dev"' in r.text
        assert "nodes.metrics.k8s.io" not in r.text  # served, not stored
        r = await client.get("/objects/revisions.serving.knative.dev")
        assert 'href="/object/revisions.serving.knative.dev/default/hello-00001"' in r.text
        assert (await client.get("/objects/gadgets.example.com")).status_code == 404
        r = await client.get("/yaml/services.serving.knative.dev/default/hello")
        assert 'href="/object/services.serving.knative.dev/default/hello"' in r.text
        r = await client.get("/")
        assert '<h2 id="node-h">Node</h2>' in r.text
        # no kubelet in this console's daemon, and no nvidia-smi on the test machine
        assert "no kubelet runs in this daemon" in r.text
        r = await client.get("/node")
        assert r.status_code == 200 and 'id="node"' in r.text and "<html" not in r.text


async def test_gpu_use_from_nvidia_smi(
    console: Console, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no GPU on the test machine: a stand-in nvidia-smi prints what the real one prints
    # for --query-gpu=index,name,utilization.gpu,memory.used,memory.total --format=csv,...
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    monkeypatch.setenv("PATH", str(smi.parent))  # no nvidia-smi at all
    async with console.signed_in() as client:
        r = await client.get("/node")
        assert "no GPU use to show: nvidia-smi is not installed on this machine" in r.text
    smi.write_text("#!/bin/sh\necho '0, NVIDIA H200, 37, 1024, 143771'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{smi.parent}:{os.environ['PATH']}")
    async with console.signed_in() as client:

        async def node_shows(text: str) -> bool:
            # measured afresh once the panel's shared measurement is old enough
            return text in (await client.get("/node")).text

        gpu = 'id="node-gpu">0: NVIDIA H200, 37% busy, 1.0 GiB of 140.4 GiB</dd>'
        await wait_until(lambda: node_shows(gpu), 10, "the GPU's use on the panel")
        smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
        failed = "nvidia-smi failed: NVIDIA-SMI has failed"
        await wait_until(lambda: node_shows(failed), 10, "the failure on the panel")


async def _send_form(
    client: httpx.AsyncClient, pairs: list[tuple[str, str]], headers: dict[str, str]
) -> httpx.Response:
    kind = {"content-type": "application/x-www-form-urlencoded"}
    return await client.post(
        "/experiments/new", content=urlencode(pairs), headers={**kind, **headers}
    )


def _experiment_form(**changes: str) -> list[tuple[str, str]]:
    fields = {
        "name": "tune-form",
        "namespace": "default",
        "objective_type": "maximize",
        "metric": "accuracy",
        "goal": "0.99",
        "other_metrics": "loss",
        "algorithm": "random",
        "parallelTrialCount": "2",
        "maxTrialCount": "4",
        "maxFailedTrialCount": "1",
        "trial_kind": "Job",
        "image": "python:3.11",
        "runtime": "",
        "command": "python3 train.py --lr=${trialParameters.lr} --opt=${trialParameters.opt}",
        "action": "preview",
    }
    fields.update(changes)
    rows = [("lr", "double", "0.01", "0.1", "", ""), ("opt", "categorical", "", "", "", "sgd,adam")]
    rows.append(("", "double", "", "", "", ""))  # a blank row is left out
    out = list(fields.items())
    for row in rows:
        for key, value in zip(("name", "type", "min", "max", "step", "values"), row, strict=True):
            out.append((f"param_{key}", value))
    return out


async def test_an_experiment_from_the_template_form(console: Console) -> None:
    from wonderland.tuning import admission

    admission.install(console.store.admission)  # what the daemon's tuning plugin installs
    experiments = "experiments.kubeflow.org"
    async with console.signed_in() as client:
        listing = (await client.get("/experiments")).text
        assert 'href="/experiments/new"' in listing
        blank = await client.get("/experiments/new")
        assert blank.status_code == 200 and '<label for="x-metric">' in blank.text
        assert "<option>bayesianoptimization</option>" in blank.text
        rv = console.store.resource_version
        r = await _send_form(client, _experiment_form(), console.origin)
        assert r.status_code == 200, r.text
        assert 'id="experiment-checked"' in r.text and "parameterType: categorical" in r.text
        assert "- adam" in r.text and "${trialParameters.opt}" in r.text
        assert console.store.resource_version == rv  # a preview creates nothing
        # its YAML can be edited on Apply, as Katib's form ends in an editable YAML
        sent = re.search(
            r'id="edit-on-apply">\s*<input type="hidden" name="yaml" value="([^"]*)"', r.text
        )
        assert sent is not None, r.text
        text = html.unescape(sent.group(1))
        assert text.startswith("apiVersion: kubeflow.org/v1beta1\nkind: Experiment\n")
        on_apply = await client.post(
            "/apply", data={"yaml": text, "mode": "check"}, headers=console.origin
        )
        assert on_apply.status_code == 200 and "kind: Experiment" in on_apply.text
        assert console.store.resource_version == rv
        # the platform's own validation, at its field, with the field's docs
        bad = _experiment_form(algorithm="annealing")
        r = await _send_form(client, bad, console.origin)
        assert r.status_code == 422, r.text
        assert "spec.algorithm.algorithmName" in r.text and "annealing" in r.text
        assert 'class="field-doc"' in r.text and 'class="bad"' in r.text
        assert "<option selected>annealing</option>" not in r.text  # not a choice offered
        count = _experiment_form(maxTrialCount="many")
        r = await _send_form(client, count, console.origin)
        assert r.status_code == 422 and "&#34;many&#34; is not a whole number" in r.text
        assert (
            'id="x-maxTrialCount" name="maxTrialCount" value="many" aria-invalid="true"' in r.text
        )
        assert console.store.resource_version == rv
        # Create: an ordinary create, then the Experiment's page
        r = await _send_form(client, _experiment_form(action="create"), console.origin)
        assert r.status_code == 303 and r.headers["location"] == "/experiments/default/tune-form"
        made = console.store.get(experiments, "default", "tune-form")
        assert made["spec"]["objective"]["goal"] == 0.99
        assert [p["name"] for p in made["spec"]["parameters"]] == ["lr", "opt"]
        opt = made["spec"]["trialTemplate"]["trialParameters"][1]
        assert (opt["name"], opt["reference"]) == ("opt", "opt")
        assert made["spec"]["metricsCollectorSpec"]["collector"]["kind"] == "StdOut"
        assert "earlyStopping" not in made["spec"]
        r = await _send_form(client, _experiment_form(action="create"), console.origin)
        assert r.status_code == 409 and "already exists" in r.text
        # algorithm settings, early stopping and the metrics collector, as Katib's form
        # offers them; each refused by the platform's admission at its own field
        assert '<label for="x-algorithm_settings">' in blank.text
        assert "<option>medianstop</option>" in blank.text
        assert "<option>File</option>" in blank.text and "<option>Push</option>" in blank.text
        for change, field, words in (
            ({"algorithm_settings": "random_state=-1"}, "spec.algorithm", "random_state"),
            ({"algorithm_settings": "n_trees=3"}, "spec.algorithm", "unknown setting n_trees"),
            (
                {"early_stopping": "medianstop", "start_step": "0"},
                "spec.earlyStopping",
                "start_step must be greater or equal than one",
            ),
            (
                {"collector": "File", "collector_path": "metrics.log"},
                "spec.metricsCollectorSpec.source.fileSystemPath.path",
                "file path where metrics file exists is required",
            ),
            (
                {"metrics_format": "loss=(.*)"},
                "spec.metricsCollectorSpec.source.filter.metricsFormat",
                "two top subexpressions are required",
            ),
        ):
            r = await _send_form(client, _experiment_form(**change), console.origin)
            assert r.status_code == 422, (change, r.text)
            assert field in r.text and words in r.text, change
            assert f'value="{list(change.values())[-1]}"' in r.text  # the form as sent
        r = await _send_form(client, _experiment_form(algorithm_settings="seed"), console.origin)
        assert r.status_code == 422 and "&#34;seed&#34; is not name=value" in r.text
        tuned = _experiment_form(
            name="tune-early",
            action="create",
            algorithm="tpe",
            algorithm_settings="n_startup_trials=2, random_state=7",
            early_stopping="medianstop",
            min_trials_required="2",
            start_step="3",
            collector="File",
            collector_path="/tmp/metrics.json",
            collector_format="JSON",
        )
        r = await _send_form(client, tuned, console.origin)
        assert r.status_code == 303, r.text
        spec = console.store.get(experiments, "default", "tune-early")["spec"]
        assert spec["algorithm"]["algorithmSettings"] == [
            {"name": "n_startup_trials", "value": "2"},
            {"name": "random_state", "value": "7"},
        ]
        assert spec["earlyStopping"] == {
            "algorithmName": "medianstop",
            "algorithmSettings": [
                {"name": "min_trials_required", "value": "2"},
                {"name": "start_step", "value": "3"},
            ],
        }
        assert spec["metricsCollectorSpec"]["source"]["fileSystemPath"] == {
            "kind": "File",
            "path": "/tmp/metrics.json",
            "format": "JSON",
        }
        r = await _send_form(client, _experiment_form(action="create"), {})
        assert r.status_code == 403  # no Origin: a cross-site form could have sent it


def test_the_experiment_form_builds_a_trainjob_trial_and_names_bad_fields() -> None:
    from wonderland.console.experiment_form import experiment_manifest, parse_form

    pairs = dict(_experiment_form(trial_kind="TrainJob", runtime="torch-distributed", image=""))
    form = parse_form(
        {k: [v] for k, v in pairs.items()}
        | {
            "param_name": ["lr", "", "layers"],
            "param_type": ["double", "double", "int"],
            "param_min": ["0.1", "", "1"],
            "param_max": ["0.5", "", "4"],
            "param_step": ["", "", "1"],
            "param_values": ["", "", ""],
        }
    )
    assert [p.name for p in form.parameters] == ["lr", "layers"]
    manifest, errors = experiment_manifest(form)
    assert errors == []
    trial = manifest["spec"]["trialTemplate"]
    assert trial["primaryContainerName"] == "node"
    assert trial["trialSpec"]["kind"] == "TrainJob"
    assert trial["trialSpec"]["spec"]["runtimeRef"] == {"name": "torch-distributed"}
    assert trial["trialSpec"]["spec"]["trainer"]["command"][0] == "python3"
    assert manifest["spec"]["parameters"][1]["feasibleSpace"] == {
        "min": "1",
        "max": "4",
        "step": "1",
    }
    _, errors = experiment_manifest(parse_form({"command": ['python3 "unclosed']}))
    assert [e.field for e in errors] == ["command"]
