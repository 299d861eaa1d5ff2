"""The drift detector in process: reference loading, request bodies, windows, the event."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from wonderland.monitoring.drift.detector import DetectorConfig, DriftDetector
from wonderland.monitoring.drift.features import ColumnMismatch, columns_of
from wonderland.monitoring.drift.reference import ReferenceError, load_reference, read_reference
from wonderland.monitoring.drift.server import DriftDetectorApp

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris() -> np.ndarray:
    from sklearn import datasets

    return np.asarray(datasets.load_iris().data)


def write_reference(folder: Path, header: list[str] = COLUMNS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [",".join(header)] + [",".join(f"{v:g}" for v in row) for row in iris()]
    (folder / "reference.csv").write_text("\n".join(rows) + "\n")
    return folder


class RecordingPublisher:
    """An in-memory EventPublisher: the events it was given."""

    name = "memory"

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def publish(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def _event(ce_id: str, body: Any, isvc: str = "iris") -> tuple[dict[str, str], bytes]:
    return (
        {
            "ce-specversion": "1.0",
            "ce-id": ce_id,
            "ce-type": "org.kubeflow.serving.inference.request",
            "ce-source": "http://localhost:9081/",
            "ce-inferenceservicename": isvc,
            "ce-namespace": "default",
            "content-type": "application/json",
        },
        orjson.dumps(body),
    )


def test_reference_from_a_folder_with_declared_and_inferred_types(tmp_path: Path) -> None:
    folder = write_reference(tmp_path / "ref", [*COLUMNS[:3], "petal_width:categorical"])
    ref = load_reference(f"file://{folder}")
    assert ref.columns == tuple(COLUMNS)
    assert ref.rows == 150
    assert ref.kinds == {**dict.fromkeys(COLUMNS[:3], "numeric"), "petal_width": "categorical"}
    np.save(tmp_path / "ref.npy", iris())
    npy = read_reference(tmp_path / "ref.npy", feature_names=COLUMNS)
    assert npy.columns == tuple(COLUMNS) and npy.rows == 150


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5.1,3.5\n4.9,3.0\n", "is numbers, not column names"),
        ("a,b\n1,2,3\n", "line 2: 3 values, but the header names 2 columns"),
        ("a,b\n", "has no rows"),
        ("a:weird\n1\n", "use name:numeric or name:categorical"),
    ],
)
def test_unreadable_references_say_why(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "reference.csv"
    path.write_text(text)
    with pytest.raises(ReferenceError, match=message):
        read_reference(path)


def test_missing_reference_names_the_uri(tmp_path: Path) -> None:
    with pytest.raises(ReferenceError, match="does not exist"):
        load_reference(f"file://{tmp_path}/nope")


def test_v1_and_v2_bodies_as_columns() -> None:
    rows = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]
    v1 = columns_of(orjson.dumps({"instances": rows}), COLUMNS)
    v2 = columns_of(
        orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [2, 4],
                        "datatype": "FP64",
                        "data": [v for r in rows for v in r],
                    }
                ]
            }
        ),
        COLUMNS,
    )
    named = columns_of(
        orjson.dumps(
            {
                "inputs": [
                    {"name": c, "shape": [2], "datatype": "FP64", "data": [r[i] for r in rows]}
                    for i, c in reversed(list(enumerate(COLUMNS)))
                ]
            }
        ),
        COLUMNS,
    )
    dicts = columns_of(
        orjson.dumps({"instances": [dict(zip(COLUMNS, r, strict=True)) for r in rows]}), COLUMNS
    )
    want = {c: [r[i] for r in rows] for i, c in enumerate(COLUMNS)}
    assert v1 == v2 == named == dicts == want


def test_inputs_that_are_not_the_references_columns_are_named() -> None:
    with pytest.raises(ColumnMismatch) as err:
        columns_of(orjson.dumps({"instances": [[1.0, 2.0, 3.0]]}), COLUMNS)
    assert "[sepal_length, sepal_width, petal_length, petal_width]" in str(err.value)
    assert "3 values per row" in str(err.value)
    with pytest.raises(ColumnMismatch, match=r"has the inputs \[age, income\]"):
        columns_of(
            orjson.dumps(
                {
                    "inputs": [
                        {"name": "age", "shape": [1], "datatype": "FP32", "data": [1]},
                        {"name": "income", "shape": [1], "datatype": "FP32", "data": [2]},
                    ]
                }
            ),
            COLUMNS,
        )


async def _post(client: httpx.AsyncClient, ce_id: str, body: Any) -> httpx.Response:
    headers, content = _event(ce_id, body)
    return await client.post("/", content=content, headers=headers)


async def test_in_distribution_then_drift_over_http(tmp_path: Path) -> None:
    ref = load_reference(str(write_reference(tmp_path / "ref")))
    publisher = RecordingPublisher()
    registry = CollectorRegistry()
    detector = DriftDetector(ref, DetectorConfig(batch_size=100), registry, [publisher])
    app = DriftDetectorApp(detector, registry)
    data = iris()
    rng = np.random.default_rng(0)
    same = data[rng.choice(len(data), 100, replace=False)]
    drifted = same + np.array([0.0, 0.0, 3.0, 1.5])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://detector") as client:
        for i in range(0, 100, 10):
            r = await _post(client, f"in{i}", {"instances": same[i : i + 10].tolist()})
            assert r.status_code == 202, r.text
        await detector.drain()
        assert publisher.events == []
        status = (await client.get("/")).json()
        assert status["inferenceServices"][0]["last"]["detected"] is False
        for i in range(0, 100, 20):
            await _post(client, f"d{i}", {"instances": drifted[i : i + 20].tolist()})
        await detector.drain()
        metrics = (await client.get("/metrics")).text
        bad = await _post(client, "bad", {"instances": [[1.0, 2.0]]})
    [event] = publisher.events
    assert event["type"] == "org.kubeflow.serving.inference.drift"
    assert event["source"] == "/wonderland/drift-detector/default/iris"
    assert event["datacontenttype"] == "application/json"
    data_ = event["data"]
    assert data_["inferenceService"] == "iris" and data_["namespace"] == "default"
    assert data_["detected"] is True and data_["windowSize"] == 100
    assert data_["reference"] == ref.uri
    drifting = {f["name"] for f in data_["features"] if f["drift"] and f["method"] == "ks"}
    assert drifting == {"petal_length", "petal_width"}
    assert set(data_["features"][0]) == {"name", "method", "score", "pValue", "drift"}
    assert 'wonderland_drift_detected{inferenceservice="iris"} 1.0' in metrics
    assert (
        'wonderland_drift_score{feature="petal_length",inferenceservice="iris",method="psi"}'
        in (metrics)
    )
    assert "wonderland_drift_p_value{" in metrics
    assert bad.status_code == 400
    assert "sepal_length, sepal_width, petal_length, petal_width" in bad.json()["error"]


async def test_each_drifted_window_is_reported_once(tmp_path: Path) -> None:
    ref = load_reference(str(write_reference(tmp_path / "ref")))
    publisher = RecordingPublisher()
    registry = CollectorRegistry()
    detector = DriftDetector(ref, DetectorConfig(batch_size=50), registry, [publisher])
    app = DriftDetectorApp(detector, registry)
    data = iris()
    rng = np.random.default_rng(1)
    same = data[rng.choice(len(data), 50, replace=False)]
    drifted = same + np.array([0.0, 0.0, 3.0, 1.5])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://detector") as client:
        # one drifted window, then in-distribution traffic: one event, not one per request
        # (both windows are tested at once: the later one is "last" whichever ends first)
        for i, rows in enumerate([*np.split(drifted, 5), *np.split(same, 5)]):
            assert (await _post(client, f"r{i}", {"instances": rows.tolist()})).status_code == 202
        await detector.drain()
        assert len(publisher.events) == 1
        status = (await client.get("/")).json()
        [item] = status["inferenceServices"]
        assert (item["windowsTested"], item["windowsDrifted"], item["pending"]) == (2, 1, 0)
        assert item["last"]["detected"] is False
        metrics = (await client.get("/metrics")).text
        assert 'wonderland_drift_detected{inferenceservice="iris"} 0.0' in metrics
        # drift that persists is reported once per new window of rows
        for i, rows in enumerate(np.split(drifted, 5)):
            await _post(client, f"again{i}", {"instances": rows.tolist()})
        await detector.drain()
    assert len(publisher.events) == 2
    assert publisher.events[0]["id"] != publisher.events[1]["id"]
    assert publisher.events[1]["data"]["referenceVersion"] == ""  # a file, not a version


def test_not_a_cloudevent_is_a_400(tmp_path: Path) -> None:
    ref = load_reference(str(write_reference(tmp_path / "ref")))
    registry = CollectorRegistry()
    app = DriftDetectorApp(DriftDetector(ref, DetectorConfig(), registry), registry)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:
            return await client.post("/", json={"instances": [[1, 2, 3, 4]]})

    r = asyncio.run(go())
    assert r.status_code == 400 and "not a CloudEvent" in r.json()["error"]


def test_a_missing_reference_is_waited_for_then_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wonderland.monitoring.drift.cli import main

    missing = tmp_path / "not-yet" / "reference.csv"
    start = time.monotonic()
    code = main([f"--storage_uri=file://{missing}", "--reference_wait=0.5"])
    assert code == 1
    assert time.monotonic() - start >= 0.5  # it kept trying for the time it was given
    assert "drift detector: " in capsys.readouterr().err


def test_the_reference_sample_is_summarized_in_the_metrics(tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    ref = load_reference(str(write_reference(tmp_path / "ref")))
    registry = CollectorRegistry()
    detector = DriftDetector(ref, DetectorConfig(model_name="iris"), registry)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"inferenceservice": "iris", **labels})

    assert value("wonderland_drift_reference_rows", what="rows") == 150
    assert value("wonderland_drift_reference_rows", what="columns") == 4
    petal = {"feature": "petal_length", "kind": "numeric"}
    assert value("wonderland_drift_reference_summary", stat="mean", **petal) == pytest.approx(
        3.758, abs=1e-3
    )
    assert value("wonderland_drift_reference_summary", stat="min", **petal) == 1.0
    assert value("wonderland_drift_reference_summary", stat="max", **petal) == 6.9
    # a re-baseline to a smaller sample of the same columns replaces the summary
    smaller = tmp_path / "small"
    smaller.mkdir()
    sample = iris()[:60]
    rows = [",".join(COLUMNS)] + [",".join(f"{v:g}" for v in row) for row in sample]
    (smaller / "reference.csv").write_text("\n".join(rows) + "\n")
    assert detector.rebaseline(load_reference(str(smaller)))
    assert value("wonderland_drift_reference_rows", what="rows") == 60
    top = value("wonderland_drift_reference_summary", stat="max", **petal)
    assert top == pytest.approx(sample[:, 2].max()) and top != 6.9
    assert b"wonderland_drift_reference_summary{" in generate_latest(registry)
