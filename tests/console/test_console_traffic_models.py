"""The Apps page's traffic form and the Models page: their data from a real store and a
real MetricsHub, and the form's POST on the console's real server."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from console_objects import KSVC, add_service, ready
from markupsafe import escape
from test_console_server import Console, console  # noqa: F401  (the server fixture)

import wonderland.platform
from wonderland.console.model_views import models
from wonderland.console.views import (
    LATEST,
    HubMetrics,
    SplitRow,
    split_rows,
    traffic_from_form,
)
from wonderland.errors import InvalidError
from wonderland.monitoring.hub import HttpRequest, HttpResponse, MetricsHub
from wonderland.serving import validation
from wonderland.store import Store

ISVC = "serving.kserve.io/v1beta1"


def _store(tmp_path: Path) -> Store:
    for name in wonderland.platform.PLUGINS:
        __import__(name)
    return Store.open(tmp_path)


def _with_status(store: Store, obj: dict[str, Any], status: dict[str, Any]) -> None:
    created = store.create(obj)
    created["status"] = status
    store.update_status(created)


def add_canary(store: Store) -> None:
    """``sklearn-iris`` mid-canary (80 % latest, 20 % previous) with a transformer that is
    not ready, and ``plain`` with all its traffic on one revision."""
    _with_status(
        store,
        {
            "apiVersion": ISVC,
            "kind": "InferenceService",
            "metadata": {"name": "sklearn-iris", "namespace": "default"},
            "spec": {
                "predictor": {
                    "canaryTrafficPercent": 80,
                    "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "file:///m/2"},
                },
                "transformer": {"containers": [{"name": "t", "image": "example/t"}]},
            },
        },
        {
            "url": "http://sklearn-iris.default.127.0.0.1.sslip.io",
            "conditions": [
                *ready("False", "TransformerNotReady"),
                {"type": "PredictorReady", "status": "True"},
                {"type": "TransformerReady", "status": "False", "reason": "Pulling"},
            ],
            "components": {
                "predictor": {
                    "latestReadyRevision": "sklearn-iris-predictor-00002",
                    "latestRolledoutRevision": "sklearn-iris-predictor-00001",
                    "previousRolledoutRevision": "sklearn-iris-predictor-00001",
                    "traffic": [
                        {
                            "revisionName": "sklearn-iris-predictor-00002",
                            "percent": 80,
                            "latestRevision": True,
                        },
                        {"revisionName": "sklearn-iris-predictor-00001", "percent": 20},
                    ],
                }
            },
        },
    )
    _with_status(
        store,
        {
            "apiVersion": ISVC,
            "kind": "InferenceService",
            "metadata": {"name": "plain", "namespace": "default"},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "xgboost"}}}},
        },
        {
            "conditions": [*ready(), {"type": "PredictorReady", "status": "True"}],
            "components": {
                "predictor": {
                    "latestReadyRevision": "plain-predictor-00001",
                    "traffic": [
                        {
                            "revisionName": "plain-predictor-00001",
                            "percent": 100,
                            "latestRevision": True,
                        }
                    ],
                }
            },
        },
    )


def _hub_with_top(items: list[dict[str, Any]]) -> MetricsHub:
    hub = MetricsHub()

    async def top(request: HttpRequest) -> HttpResponse:
        assert request.query_string == "kind=models"
        return HttpResponse(200, orjson.dumps({"kind": "models", "items": items}))

    hub.add_route("/wonderland/v1/top", top)
    return hub


async def test_models_view_shows_readiness_canary_split_and_metrics(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        add_canary(store)
        hub = _hub_with_top(
            [
                {
                    "namespace": "default",
                    "name": "sklearn-iris",
                    "values": {"request_rate": 4.5, "latency_p50": 0.012, "latency_p95": 0.05},
                }
            ]
        )
        page = models(store, await HubMetrics(hub).top("models"))
        assert page.metrics_available
        plain, iris = page.models  # by namespace, then name
        assert (iris.name, plain.name) == ("sklearn-iris", "plain")
        assert iris.url == "http://sklearn-iris.default.127.0.0.1.sslip.io"
        assert iris.predictor.status == "True"
        assert iris.transformer is not None and iris.transformer.status == "False"
        assert iris.transformer.reason == "Pulling"
        assert iris.canary
        assert (iris.latest_revision, iris.latest_percent) == ("sklearn-iris-predictor-00002", 80)
        assert (iris.previous_revision, iris.previous_percent) == (
            "sklearn-iris-predictor-00001",
            20,
        )
        assert (iris.request_rate, iris.latency_p50, iris.latency_p95) == (4.5, 0.012, 0.05)
        assert iris.model_format == "sklearn" and iris.storage_uri == "file:///m/2"
        assert plain.transformer is None and not plain.canary
        assert plain.latest_percent == 100 and plain.request_rate is None
        assert models(store, {}, namespace="other").models == []
    finally:
        store.close()


def test_split_rows_offer_every_revision_and_the_latest(tmp_path: Path) -> None:
    service = {
        "spec": {"traffic": [{"revisionName": "hello-00001", "percent": 100, "tag": "old"}]},
        "status": {"traffic": [{"revisionName": "hello-00002", "percent": 100}]},
    }
    rows = split_rows(service, ["hello-00002", "hello-00001"])
    assert rows == [
        SplitRow("hello-00001", 100, "old"),
        SplitRow(LATEST, 0, ""),
        SplitRow("hello-00002", 0, ""),
    ]
    assert rows[1].label == "latest revision"
    assert split_rows({}, []) == [SplitRow(LATEST, 100, "")]


def test_traffic_from_form_drops_empty_rows_and_names_bad_numbers() -> None:
    traffic, where = traffic_from_form(
        [LATEST, "hello-00001", "hello-00002"], ["60", "40", "0"], ["", " old ", ""]
    )
    assert traffic == [
        {"latestRevision": True, "percent": 60},
        {"revisionName": "hello-00001", "percent": 40, "tag": "old"},
    ]
    assert where == ["latest revision", "hello-00001"]
    with pytest.raises(InvalidError) as err:
        traffic_from_form([LATEST], ["ten"], [""])
    assert err.value.field == "percent of latest revision" and '"ten"' in str(err.value)
    with pytest.raises(InvalidError, match="sum to 100"):
        traffic_from_form([LATEST], ["0"], [""])


# -- the form's POST on the real server ----------------------------------------------------


def _add_service(store: Store) -> None:
    store.create(
        {
            "apiVersion": KSVC,
            "kind": "Service",
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [{"image": "example/hello:2"}]}}},
        }
    )
    for n in (1, 2):
        store.create(
            {
                "apiVersion": KSVC,
                "kind": "Revision",
                "metadata": {
                    "name": f"hello-0000{n}",
                    "namespace": "default",
                    "labels": {"serving.knative.dev/service": "hello"},
                },
                "spec": {"containers": [{"image": f"example/hello:{n}"}]},
            }
        )


def _form(rows: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    out = [("namespace", "default"), ("name", "hello")]
    for target, percent, tag in rows:
        out += [("target", target), ("percent", percent), ("tag", tag)]
    return out


async def _post(client: Any, form: list[tuple[str, str]], headers: dict[str, str]) -> Any:
    body = urlencode(form)
    kind = {"content-type": "application/x-www-form-urlencoded"}
    return await client.post("/apps", content=body, headers={**kind, **headers})


def _traffic(store: Store) -> Any:
    return store.get("services.serving.knative.dev", "default", "hello")["spec"].get("traffic")


async def test_traffic_post_validates_like_knative_and_updates_the_service(
    console: Console,  # noqa: F811
) -> None:
    validation.register_checks(console.store.admission)  # what the serving plugin installs
    _add_service(console.store)
    before = _traffic(console.store)
    async with console.client() as anonymous:
        form = _form([(LATEST, "100", "")])
        r = await _post(anonymous, form, console.origin)
        assert r.status_code == 401
    async with console.signed_in() as client:
        page = (await client.get("/apps")).text
        assert 'class="traffic-form"' not in page  # forms come on demand, one at a time
        assert 'href="/apps?edit=default%2Fhello#traffic-default-hello"' in page
        page = (await client.get("/apps?edit=default/hello")).text
        assert 'class="traffic-form"' in page and "Save traffic split" in page
        assert 'for="traffic-default-hello-1-percent"' in page
        assert page.count('class="traffic-form"') == 1
        r = await client.get("/apps?edit=default/nope")
        assert r.status_code == 200 and "No Service default/nope to edit" in r.text
        good = _form([(LATEST, "70", "current"), ("hello-00001", "30", "old")])
        r = await _post(client, good, {})
        assert r.status_code == 403  # no Origin: a cross-site form could have sent it
        cases = [
            ([(LATEST, "70", ""), ("hello-00001", "20", "")], "sum to 90, want 100", "the split"),
            ([(LATEST, "120", ""), ("hello-00001", "-20", "")], "0 <= 120 <= 100", "latest"),
            ([(LATEST, "50", "x"), ("hello-00001", "50", "x")], 'definitions for "x"', "tag of"),
            ([(LATEST, "5O", "")], "not a whole number", "percent of latest revision"),
        ]
        for rows, message, where in cases:
            r = await _post(client, _form(rows), console.origin)
            assert r.status_code == 422, (rows, r.status_code)
            assert "Not saved:" in r.text and where in r.text and str(escape(message)) in r.text
            assert 'role="alert"' in r.text and "data-editing" in r.text
            assert _traffic(console.store) == before  # nothing changed
        r = await _post(client, good, console.origin)
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/apps?namespace=default&q=hello#app-default-hello"
        assert _traffic(console.store) == [
            {"latestRevision": True, "percent": 70, "tag": "current"},
            {"revisionName": "hello-00001", "percent": 30, "tag": "old"},
        ]
        page = (await client.get("/apps?edit=default/hello")).text
        assert 'value="current"' in page and 'value="30"' in page
        missing = [("namespace", "default"), ("name", "nope"), *good[2:]]
        r = await _post(client, missing, console.origin)
        assert r.status_code == 404 and "Not saved:" in r.text


async def test_models_page(console: Console) -> None:  # noqa: F811
    add_canary(console.store)
    async with console.signed_in() as client:
        r = await client.get("/models")
        assert r.status_code == 200
        html = r.text
        assert '<a href="/models" aria-current="page">Models</a>' in html
        assert 'data-model="default/sklearn-iris"' in html
        assert (
            "canary: sklearn-iris-predictor-00002 80%, previous sklearn-iris-predictor-00001 20%"
            in html
        )
        assert "Pulling" in html and "No request metrics yet" in html
        fragment = (await client.get("/models?fragment=main")).text
        assert "<h1>Models</h1>" in fragment and "<html" not in fragment
        r = await client.get("/")
        assert 'href="/models"' in r.text


async def test_the_namespace_selector_narrows_every_page_and_stays_in_the_links(
    console: Console,  # noqa: F811
) -> None:
    for ns in ("default", "team"):
        try:
            console.store.create(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            )
        except Exception:  # made already when the store opened
            pass
    add_service(console.store, "hello", "default")
    add_service(console.store, "other", "team")
    async with console.signed_in() as client:
        html = (await client.get("/apps?namespace=team")).text
        assert 'data-app="team/other"' in html and 'data-app="default/hello"' not in html
        assert 'name="namespace" list="ns-choices" value="team"' in html
        assert '<option value="default"></option><option value="team"></option>' in html
        assert 'href="/models?namespace=team"' in html and 'href="/training?namespace=team"' in html
        assert 'action="/apps"' in html
        fragment = (await client.get("/apps?namespace=team&fragment=main")).text
        assert 'data-app="default/hello"' not in fragment
        overview = (await client.get("/?namespace=team")).text
        assert 'href="/apps?namespace=team">Services</a>' in overview
        tiles = overview.split('data-resource="services.serving.knative.dev"')[1]
        assert '<span class="tile-n">1</span>' in tiles.split("</li>")[0]
        objects = (await client.get("/objects?namespace=team")).text
        assert 'id="kinds-namespace">team' in objects
        assert 'href="/objects/services.serving.knative.dev?namespace=team"' in objects
        listing = (await client.get("/objects/revisions.serving.knative.dev?namespace=team")).text
        assert "other-00001" in listing and "hello-00001" not in listing
        # a page of one object: the selector goes to its list
        detail = (await client.get("/object/services.serving.knative.dev/default/hello")).text
        assert '<form method="get" action="/objects" class="ns-select"' in detail
        plain = (await client.get("/apps")).text
        assert 'href="/models"' in plain and 'data-app="default/hello"' in plain
        # a namespace with objects but no Namespace object is suggested too, at once
        add_service(console.store, "lab-app", "lab")
        html = (await client.get("/apps")).text
        assert '<option value="lab"></option><option value="team"></option>' in html
