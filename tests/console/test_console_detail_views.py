"""The Service and InferenceService pages' data, from a real store and a real metrics
history (the monitoring endpoint's routes, called in process)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from detail_support import (
    Metrics,
    Scaler,
    add_ready_model,
    cold_started_table,
    metrics,
    open_store,
    write_history,
)

from wonderland.console.app_charts import cold_start_histogram
from wonderland.console.app_pages import functions_page, service_page
from wonderland.console.charts import step_for
from wonderland.console.model_pages import example_request, model_page, parse_metadata
from wonderland.console.sources import HubSources, NoSources
from wonderland.errors import NotFoundError
from wonderland.monitoring.hub import MetricsHub
from wonderland.store import Store


@pytest.fixture
def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = open_store(tmp_path)
    yield store  # type: ignore[misc]
    store.close()


@pytest.fixture
async def m() -> AsyncIterator[Metrics]:
    out = metrics()
    yield out
    await out.scraper.close()


async def test_service_charts_come_from_the_history_per_revision(store: Store, m: Metrics) -> None:
    write_history(
        m.recorder,
        [
            ("revisions", "hello-00002", "request_rate", 9.0),
            ("revisions", "hello-00001", "request_rate", 1.0),
            ("revisions", "hello-00002", "replicas", 2.0),
            ("revisions", "hello-00002", "desired_replicas", 3.0),
            ("revisions", "hello-00001", "replicas", 1.0),
            ("revisions", "hello-00002", "latency_p95", 0.012),
            ("revisions", "hello-00002", "cold_starts", 1.0),
        ],
        ago=(30, 20, 10),
    )
    page = await service_page(
        store,
        "default",
        "hello",
        sources=HubSources(m.hub, m.recorder.store),
        history_step=1.0,
        range_name="5m",
    )
    charts = {c.id: c for c in page.charts}
    requests = charts["chart-requests"]
    assert [line.label for line in requests.lines] == ["hello-00001", "hello-00002"]
    assert requests.lines[1].known == [9.0, 9.0, 9.0] and requests.lines[0].known == [1.0] * 3
    replicas = charts["chart-replicas"]
    assert {line.label: line.last for line in replicas.lines} == {"actual": 3.0, "desired": 3.0}
    latency = charts["chart-latency"]
    p95 = next(line for line in latency.lines if line.label == "hello-00002 p95")
    assert p95.last == pytest.approx(0.012)
    assert page.cold_start_count == 3  # one per written round
    assert page.range == "5m"
    # the JSON the page embeds for its chart script: every chart, the same data
    doc = json.loads(page.charts_data)
    assert doc["end"] - doc["start"] == pytest.approx(300)  # every axis spans the range
    assert [c["id"] for c in doc["charts"]] == [c.id for c in page.charts]
    series = doc["charts"][1]["series"]
    assert series[1]["label"] == "hello-00002" and 9.0 in series[1]["values"]
    assert requests.summaries[1] == ("hello-00002", "9.00/s", "9.00/s", "9.00/s")


async def test_the_history_is_read_in_process_and_draws_what_the_route_would(
    store: Store, m: Metrics
) -> None:
    write_history(
        m.recorder,
        [
            ("revisions", "hello-00002", "request_rate", 4.0),
            ("revisions", "hello-00001", "latency_p95", 0.25),
        ],
        ago=(40, 30, 10),  # a gap at 20 s: no value there
    )
    now = time.time()
    routed = await service_page(
        store, "default", "hello", sources=HubSources(m.hub), range_name="5m", now=now
    )
    # no /wonderland/v1/history route at all: the page reads the HistoryStore itself
    direct = await service_page(
        store,
        "default",
        "hello",
        sources=HubSources(MetricsHub(), m.recorder.store),
        range_name="5m",
        now=now,
    )
    assert direct.charts_data == routed.charts_data
    requests = next(c for c in direct.charts if c.id == "chart-requests")
    assert requests.points == 3 and direct.metrics_available


async def test_request_rate_by_status_class_and_the_autoscaler_windows_over_time(
    store: Store, m: Metrics
) -> None:
    write_history(
        m.recorder,
        [
            ("revisions", "hello-00002", "request_rate", 10.0),
            ("revisions", "hello-00002", "error_rate", 1.0),
            ("revisions", "hello-00002", "rate_4xx", 2.0),
            ("revisions", "hello-00001", "request_rate", 3.0),
            ("revisions", "hello-00001", "error_rate", 0.0),
            ("revisions", "hello-00002", "concurrency_stable", 1.5),
            ("revisions", "hello-00002", "concurrency_panic", 6.0),
        ],
        ago=(3, 2),
    )
    page = await service_page(
        store,
        "default",
        "hello",
        sources=HubSources(m.hub, m.recorder.store),
        range_name="5m",
        history_step=1.0,
    )
    charts = {c.id: c for c in page.charts}
    status = {line.label: line.known for line in charts["chart-status"].lines}
    # both revisions: 13 requests/s, of which 2 answered 4xx and 1 answered 5xx
    assert status == {"2xx": [10.0, 10.0], "4xx": [2.0, 2.0], "5xx": [1.0, 1.0]}
    windows = {line.label: line.last for line in charts["chart-scaler"].lines}
    assert windows == {"hello-00002 stable": 1.5, "hello-00002 panic": 6.0}
    assert "(concurrency)" in charts["chart-scaler"].title


def test_cold_starts_are_binned_by_how_long_they_took() -> None:
    bins = cold_start_histogram([0.05, 0.15, 0.18, 1.5, 0.12])
    assert [(b.label, b.count) for b in bins] == [
        ("0 to 0.1 s", 1),
        ("0.1 to 0.2 s", 3),
        ("0.2 to 0.4 s", 0),
        ("0.4 to 0.6 s", 0),
        ("0.6 to 1 s", 0),
        ("1 to 2 s", 1),
    ]
    assert cold_start_histogram([]) == []
    assert [b.label for b in cold_start_histogram([90.0])] == ["over 60 s"]


async def test_a_range_outside_the_picker_is_the_default_and_steps_stay_bounded(
    store: Store, m: Metrics
) -> None:
    page = await service_page(store, "default", "hello", sources=HubSources(m.hub), range_name="1y")
    assert page.range == "1h" and page.ranges == ["5m", "1h", "6h", "24h"]
    assert step_for(86400, 10) == 240 and step_for(300, 10) == 10
    assert all(not c.has_data and "history fills in" in c.empty for c in page.charts[:3])


async def test_autoscaler_cold_starts_pods_events_and_dapr_of_a_service(
    store: Store, m: Metrics
) -> None:
    svc = store.get("services.serving.knative.dev", "default", "hello")
    svc["spec"]["template"]["metadata"] = {
        "annotations": {"dapr.io/enabled": "true", "dapr.io/app-id": "greeter"}
    }
    svc["metadata"].setdefault("labels", {}).update(
        {"function.knative.dev/name": "hello", "function.knative.dev/runtime": "python"}
    )
    store.update(svc)
    for name, ctype, scopes in (
        ("statestore", "state.redis", []),
        ("orders", "pubsub.redis", ["greeter"]),
        ("secret-only", "secretstores.local.file", ["someone-else"]),
    ):
        store.create(
            {
                "apiVersion": "dapr.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"type": ctype, "version": "v1", "metadata": []},
                **({"scopes": scopes} if scopes else {}),
            }
        )
    store.create(
        {
            "apiVersion": "dapr.io/v2alpha1",
            "kind": "Subscription",
            "metadata": {"name": "new-orders", "namespace": "default"},
            "spec": {
                "pubsubname": "orders",
                "topic": "new",
                "routes": {
                    "rules": [{"match": 'event.type == "big"', "path": "/big"}],
                    "default": "/orders",
                },
                "deadLetterTopic": "poison",
            },
            "scopes": ["greeter"],
        }
    )
    for name, scopes in (("greeter-resiliency", ["greeter"]), ("others", ["someone-else"])):
        store.create(
            {
                "apiVersion": "dapr.io/v1alpha1",
                "kind": "Resiliency",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {
                    "policies": {
                        "timeouts": {"general": "5s"},
                        "retries": {
                            "forever": {"policy": "constant", "duration": "2s", "maxRetries": -1},
                            "important": {
                                "policy": "exponential",
                                "maxInterval": "15s",
                                "maxRetries": 3,
                            },
                        },
                        "circuitBreakers": {
                            "simpleCB": {
                                "maxRequests": 1,
                                "timeout": "30s",
                                "trip": "consecutiveFailures >= 5",
                            }
                        },
                    },
                    "targets": {
                        "apps": {
                            "checkout": {
                                "timeout": "general",
                                "retry": "important",
                                "circuitBreaker": "simpleCB",
                            }
                        },
                        "components": {
                            "statestore": {"outbound": {"retry": "forever"}},
                            "orders": {"inbound": {"retry": "important"}},
                        },
                    },
                },
                "scopes": scopes,
            }
        )
    store.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "hello-00002-deployment-1",
                "namespace": "default",
                "labels": {"serving.knative.dev/revision": "hello-00002"},
            },
            "spec": {
                "containers": [
                    {"name": "user-container", "image": "x"},
                    {"name": "daprd", "image": "y"},
                ]
            },
        }
    )
    page = await service_page(
        store,
        "default",
        "hello",
        sources=HubSources(m.hub),
        scaler=Scaler(),
        table=cold_started_table(),
    )
    assert [
        (s.revision, s.desired, s.ready, s.stable, s.panic, s.target, s.panicking)
        for s in page.scaler
    ] == [("hello-00002", 3, 2, 4.5, 9.25, 1.4, True)]
    assert [c.revision for c in page.cold_starts] == ["hello-00002"]
    assert [(b.label, b.count) for b in page.cold_start_bins] == [("0 to 0.1 s", 1)]
    assert 0.015 < page.cold_starts[0].seconds < 5
    assert [(p.name, p.containers) for p in page.pods] == [
        ("hello-00002-deployment-1", ["user-container", "daprd"])
    ]
    assert [e.reason for e in page.events] == ["Created"]  # the Service's, not iris's
    assert page.dapr is not None and page.dapr.app_id == "greeter"
    assert [(c.name, c.type) for c in page.dapr.components] == [
        ("orders", "pubsub.redis"),
        ("statestore", "state.redis"),
    ]
    (sub,) = page.dapr.subscriptions
    assert (sub.pubsub, sub.topic, sub.dead_letter) == ("orders", "new", "poison")
    assert sub.routes == 'event.type == "big" → /big, default → /orders'
    # the policies its sidecar applies, from the one Resiliency scoped to it
    assert page.dapr.resiliencies == ["greeter-resiliency"] and page.dapr.resiliency_error == ""
    rows = {p.target: p for p in page.dapr.policies}
    assert set(rows) == {"calls to app checkout", "statestore (outbound)", "orders (inbound)"}
    checkout = rows["calls to app checkout"]
    assert (checkout.timeout, checkout.resiliency) == ("5s", "greeter-resiliency")
    assert checkout.retry == "exponential back-off up to 15s, at most 3"
    assert checkout.circuit_breaker == (
        "opens when consecutiveFailures >= 5; half-open after 30s (1 trial request)"
    )
    assert rows["statestore (outbound)"].retry == "every 2s, no limit"
    assert page.function is not None and page.function.runtime == "python"
    (listed,) = functions_page(store).functions  # hello is the only function
    assert (listed.namespace, listed.name, listed.function.runtime) == (
        "default",
        "hello",
        "python",
    )
    assert listed.ready.status == "True"


async def test_a_plain_service_has_no_dapr_or_function_and_a_missing_one_is_not_found(
    store: Store,
) -> None:
    page = await service_page(store, "default", "hello", sources=NoSources())
    assert page.dapr is None and page.function is None and not page.metrics_available
    assert functions_page(store).functions == []
    assert page.scaler == [] and not page.scaler_available and page.pods == []
    with pytest.raises(NotFoundError):
        await service_page(store, "default", "nope", sources=NoSources())


async def test_model_page_conditions_components_canary_and_why_empty(
    store: Store, m: Metrics
) -> None:
    add_ready_model(store, logger=False)
    page = await model_page(store, "default", "flowers", sources=HubSources(m.hub))
    assert [t for t, _ in page.conditions] == ["Ready", "PredictorReady"]
    (pred,) = page.components
    assert pred.name == "predictor" and pred.ready.status == "True"
    assert pred.traffic == "flowers-predictor-00002 10%, flowers-predictor-00001 90%"
    assert page.model.canary and page.model.latest_percent == 10
    assert page.address == "http://flowers.default.svc.cluster.local"
    assert page.payloads == [] and "logs no payloads" in page.payloads_why
    assert page.drift == [] and "no drift detector" in page.drift_why
    assert page.reference is None
    assert page.metadata is None


async def test_model_page_drift_statistics_and_charts(store: Store, m: Metrics) -> None:
    write_history(
        m.recorder,
        [
            ("models", "iris", "request_rate", 2.5),
            ("models", "iris", "latency_p50", 0.003),
            ("models", "iris", "preprocess_p50", 0.0004),
            ("models", "iris", "postprocess_p95", 0.002),
        ],
        ago=(3, 2),
    )
    await m.recorder.round()  # the drift detector's gauges into the last scrape
    page = await model_page(
        store, "default", "iris", sources=HubSources(m.hub, m.recorder.store), range_name="5m"
    )
    assert page.drift_detected is True and page.drift_why == ""
    assert [(d.feature, d.method, d.score, d.p_value) for d in page.drift] == [
        ("petal_length", "ks", 0.61, 0.0004),
        ("sepal_width", "ks", 0.12, 0.41),
    ]
    reference = page.reference
    assert reference is not None and (reference.rows, reference.columns) == (150, 2)
    assert reference.version == "7"
    petal, species = reference.features
    assert (petal.feature, petal.kind, petal.mean, petal.min, petal.max) == (
        "petal_length",
        "numeric",
        3.758,
        1.0,
        6.9,
    )
    assert (species.kind, species.categories, species.mean) == ("categorical", 3, None)
    charts = {c.id: c for c in page.charts}
    assert charts["chart-model-requests"].lines[0].last == 2.5
    assert charts["chart-model-latency"].lines[0].last == pytest.approx(0.003)
    stages = {line.label: line.last for line in charts["chart-model-stages"].lines}
    assert stages == {
        "preprocess p50": pytest.approx(0.0004),
        "predict p50": pytest.approx(0.003),
        "postprocess p95": pytest.approx(0.002),
    }
    # iris has no logger: the page says how to get payloads instead of an empty table
    assert page.payloads == [] and "logs no payloads" in page.payloads_why


async def test_model_page_shows_the_newest_logged_payloads(
    store: Store, m: Metrics, tmp_path: Path
) -> None:
    from wonderland.monitoring.cloudevents import REQUEST_TYPE, RESPONSE_TYPE, LoggedEvent
    from wonderland.monitoring.payloads import PayloadStore
    from wonderland.monitoring.sink import PayloadSink

    add_ready_model(store, "flowers", logger=True)
    page = await model_page(store, "default", "flowers", sources=HubSources(m.hub))
    assert page.payloads == [] and "sink is not running" in page.payloads_why
    payloads = PayloadStore(tmp_path / "payloads.db")
    PayloadSink(payloads, m.hub.registry).install(m.hub)
    page = await model_page(store, "default", "flowers", sources=HubSources(m.hub))
    assert page.payloads == [] and "No calls logged yet" in page.payloads_why
    for kind, body in ((REQUEST_TYPE, b'{"inputs": [1]}'), (RESPONSE_TYPE, b'{"outputs": [2]}')):
        payloads.add(
            LoggedEvent(
                "call-1",
                kind,
                "src",
                "",
                "flowers",
                "default",
                "predictor",
                "",
                "application/json",
                body,
            )
        )
    page = await model_page(store, "default", "flowers", sources=HubSources(m.hub))
    (row,) = page.payloads
    assert (row.id, row.component) == ("call-1", "predictor")
    assert row.request == '{"inputs": [1]}' and row.response == '{"outputs": [2]}'
    assert page.payloads_why == ""
    payloads.close()


def test_the_try_it_example_is_built_from_the_v2_metadata() -> None:
    meta = parse_metadata(
        {
            "name": "iris",
            "platform": "sklearn",
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
            "outputs": [{"name": "output-0", "datatype": "INT64", "shape": [-1]}],
        }
    )
    (field,) = meta.inputs
    assert (field.name, field.datatype, field.shape, field.row_width) == (
        "input-0",
        "FP64",
        [-1, 4],
        4,
    )
    assert field.shape_text == "[any, 4]"
    doc = json.loads(example_request(meta))
    assert doc == {
        "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [0, 0, 0, 0]}]
    }


async def test_a_resiliency_the_sidecar_would_refuse_is_shown_as_an_error(store: Store) -> None:
    svc = store.get("services.serving.knative.dev", "default", "hello")
    svc["spec"]["template"]["metadata"] = {"annotations": {"dapr.io/enabled": "true"}}
    store.update(svc)
    store.create(
        {
            "apiVersion": "dapr.io/v1alpha1",
            "kind": "Resiliency",
            "metadata": {"name": "typo", "namespace": "default"},
            "spec": {"policies": {"timeouts": {"general": "five seconds"}}},
        }
    )
    page = await service_page(store, "default", "hello", sources=NoSources())
    assert page.dapr is not None and page.dapr.app_id == "hello"
    assert page.dapr.policies == []
    assert "not valid" in page.dapr.resiliency_error
    assert "five seconds" in page.dapr.resiliency_error
