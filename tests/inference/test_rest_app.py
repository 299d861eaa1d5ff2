"""The REST adapter and data plane in-process: V2, V1, versions, repository, errors, metrics."""

from __future__ import annotations

import asyncio
import shutil
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from _support.daemon import wait_until

from wonderland.inference.dataplane import DataPlane
from wonderland.inference.model import ArrayModel
from wonderland.inference.repository import BatchingOptions, ModelRepository, ModelSource
from wonderland.inference.rest import RestApp

from .conftest import IRIS_ROWS

CUSTOM = textwrap.dedent(
    """
    import numpy as np

    class Doubler:
        def __init__(self, name):
            self.name = name
            self.ready = False
            self.loaded = 0

        def load(self):
            self.loaded += 1
            self.ready = True

        def preprocess(self, payload, headers=None):
            if isinstance(payload, dict):
                return np.asarray(payload["instances"], dtype=float)
            return payload.inputs[0].as_numpy()

        async def predict(self, data, headers=None):
            if data.size and data.reshape(-1)[0] < 0:
                raise RuntimeError("negative input is not supported")
            return data * 2

        def postprocess(self, result, headers=None):
            return result

        def explain(self, payload, headers=None):
            return {"explanations": ["twice the input"], "user_agent": headers.get("user-agent")}
    """
)


@pytest.fixture
def custom_dir(tmp_path: Path) -> Path:
    d = tmp_path / "doubler"
    d.mkdir()
    (d / "model.py").write_text(CUSTOM)
    return d


@pytest.fixture
async def client(
    iris_dir: Path, custom_dir: Path, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    # A repository: iris with two versions, plus the custom model.
    root = tmp_path / "repo"
    for v in ("1", "2"):
        (root / "iris" / v).mkdir(parents=True)
        shutil.copy(iris_dir / "model.joblib", root / "iris" / v / "model.joblib")
    shutil.copytree(custom_dir, root / "doubler")
    repo = ModelRepository(root=root)
    await repo.load_all()
    app = RestApp(DataPlane(repo), max_request_size=4096)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        yield c
    await repo.close()


def _iris(shape: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    data = IRIS_ROWS[:2]
    return {
        "inputs": [{"name": "input-0", "shape": shape or [2, 4], "datatype": "FP32", "data": data}],
        **extra,
    }


async def test_health_and_server_metadata(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/health/live")).json() == {"live": True}
    assert (await client.get("/v2/health/ready")).json() == {"ready": True}
    meta = (await client.get("/v2")).json()
    assert meta["name"] == "wonderland"
    assert "binary_tensor_data" in meta["extensions"]
    assert (await client.get("/v2/models")).json() == {"models": ["doubler", "iris"]}


async def test_v2_infer_echoes_id_on_versioned_and_unversioned_paths(
    client: httpx.AsyncClient, iris_expected: list[int]
) -> None:
    r = await client.post("/v2/models/iris/infer", json=_iris(id="abc"))
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "abc"
    assert body["model_version"] == "2"  # unversioned path: the highest version
    assert body["outputs"][0]["data"] == iris_expected[:2]
    r = await client.post("/v2/models/iris/versions/1/infer", json=_iris())
    assert r.json()["model_version"] == "1"
    assert r.json()["outputs"][0]["shape"] == [2]
    meta = (await client.get("/v2/models/iris/versions/1")).json()
    assert meta["versions"] == ["1", "2"]
    assert meta["inputs"][0]["shape"] == [-1, 4]
    ready = await client.get("/v2/models/iris/versions/2/ready")
    assert ready.json() == {"name": "iris", "ready": True}


async def test_triton_style_model_config_for_perf_analyzer(client: httpx.AsyncClient) -> None:
    config = (await client.get("/v2/models/iris/config")).json()
    assert config["max_batch_size"] == 64
    assert config["input"] == [{"name": "input-0", "data_type": "TYPE_FP64", "dims": [4]}]


async def test_unknown_model_or_version_is_404(client: httpx.AsyncClient) -> None:
    r = await client.post("/v2/models/nope/infer", json=_iris())
    assert r.status_code == 404 and "nope" in r.json()["error"]
    r = await client.post("/v2/models/iris/versions/9/infer", json=_iris())
    assert r.status_code == 404 and "version '9'" in r.json()["error"]
    assert (await client.get("/v1/models/nope")).status_code == 404


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"inputs":[{"name":"input-0","shape":[2,4],"datatype":"FP99","data":[1]}]}', "FP99"),
        (
            b'{"inputs":[{"name":"input-0","shape":[2,4],"datatype":"FP32","data":[1,2]}]}',
            "needs 8",
        ),
        (b'{"inputs":[]}', "'inputs'"),
        (
            b'{"inputs":[{"name":"input-0","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}',
            "features",
        ),
    ],
)
async def test_client_mistakes_are_400_with_an_error_body(
    client: httpx.AsyncClient, body: bytes, fragment: str
) -> None:
    r = await client.post("/v2/models/iris/infer", content=body)
    assert r.status_code == 400
    assert fragment in r.json()["error"]


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    r = await client.post("/v2/models/iris/infer", content=b"x" * 5000)
    assert r.status_code == 413
    assert "limit" in r.json()["error"]


async def test_v1_predict_and_listing(client: httpx.AsyncClient, iris_expected: list[int]) -> None:
    r = await client.post("/v1/models/iris:predict", json={"instances": IRIS_ROWS})
    assert r.json() == {"predictions": iris_expected}
    assert (await client.get("/v1/models/iris")).json() == {"name": "iris", "ready": True}
    assert (await client.get("/v1/models")).json()["models"] == ["doubler", "iris"]
    r = await client.post("/v1/models/iris:predict", json={"rows": []})
    assert r.status_code == 400 and "instances" in r.json()["error"]


async def test_custom_model_hooks_run_for_v1_and_v2(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/models/doubler:predict", json={"instances": [[1, 2]]})
    assert r.json() == {"predictions": [[2.0, 4.0]]}
    r = await client.post(
        "/v2/models/doubler/infer",
        json={
            "id": "c1",
            "inputs": [{"name": "x", "shape": [3], "datatype": "INT32", "data": [1, 2, 3]}],
        },
    )
    body = r.json()
    assert body["id"] == "c1"
    assert body["outputs"][0] == {
        "name": "output-0",
        "datatype": "INT32",
        "shape": [3],
        "data": [2, 4, 6],
    }


async def test_custom_model_error_is_500_with_its_message(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/models/doubler:predict", json={"instances": [[-1]]})
    assert r.status_code == 500
    assert "negative input is not supported" in r.json()["error"]


async def test_explain_where_the_model_has_it(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/models/doubler:explain", json={"instances": [[1]]}, headers={"user-agent": "t/1"}
    )
    assert r.json() == {"explanations": ["twice the input"], "user_agent": "t/1"}
    r = await client.post("/v1/models/iris:explain", json={"instances": [[1, 2, 3, 4]]})
    assert r.status_code == 501 and "explain" in r.json()["error"]


async def test_repository_index_unload_and_load(client: httpx.AsyncClient) -> None:
    index = (await client.post("/v2/repository/index", json={})).json()
    assert {"name": "iris", "version": "1", "state": "READY", "reason": ""} in index
    r = await client.post("/v2/repository/models/iris/unload")
    assert r.json() == {"name": "iris", "unload": True}
    assert (await client.post("/v2/models/iris/infer", json=_iris())).status_code == 404
    index = (await client.post("/v2/repository/index", json={})).json()
    assert {"name": "iris", "state": "UNAVAILABLE", "reason": "unloaded"} in index
    assert (await client.post("/v2/repository/index", json={"ready": True})).json() == [
        {"name": "doubler", "state": "READY", "reason": ""}
    ]
    r = await client.post("/v2/repository/models/iris/load")
    assert r.json() == {"name": "iris", "load": True}
    assert (await client.post("/v2/models/iris/infer", json=_iris())).status_code == 200
    r = await client.post("/v2/repository/models/ghost/load")
    assert r.status_code == 404


async def test_metrics_have_kserve_stage_names_and_request_counts(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/v2/models/iris/infer", json=_iris())
    await client.post("/v1/models/doubler:predict", json={"instances": [[1]]})
    text = (await client.get("/metrics")).text
    for name in (
        "request_preprocess_seconds",
        "request_predict_seconds",
        "request_postprocess_seconds",
        "request_explain_seconds",
        "inference_queue_depth",
        "inference_batch_size",
    ):
        assert name in text
    assert 'inference_requests_total{code="200",model_name="iris",protocol="rest"}' in text


class _SlowModel(ArrayModel):
    """Sleeps in predict so requests pile up behind it; counts its calls."""

    platform = "test"

    def __init__(self, name: str, delay: float) -> None:
        super().__init__(name, Path("."))
        self.delay = delay
        self.calls: list[int] = []

    def load(self) -> None:
        pass

    def predict_arrays(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        import time

        x = self.first_input(inputs)
        self.calls.append(int(x.shape[0]))
        time.sleep(self.delay)
        return {"output-0": x.sum(axis=1)}


async def _slow_client(
    model: _SlowModel, batching: BatchingOptions
) -> tuple[httpx.AsyncClient, ModelRepository]:
    repo = ModelRepository(batching=batching)
    repo.add_model(model)
    app = RestApp(DataPlane(repo))
    c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    return c, repo


def _row(i: int) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [i, i]}]}


async def test_concurrent_requests_are_merged_and_each_gets_its_own_rows() -> None:
    model = _SlowModel("slow", 0.05)
    c, repo = await _slow_client(model, BatchingOptions(max_batch_size=64))
    async with c:
        replies = await asyncio.gather(
            *(c.post("/v2/models/slow/infer", json=_row(i)) for i in range(20))
        )
    await repo.close()
    assert [r.json()["outputs"][0]["data"] for r in replies] == [[2.0 * i] for i in range(20)]
    assert sum(model.calls) == 20
    assert len(model.calls) < 20  # fewer model calls than requests
    assert max(model.calls) > 1


async def test_batching_off_calls_the_model_once_per_request() -> None:
    model = _SlowModel("slow", 0.0)
    c, repo = await _slow_client(model, BatchingOptions(max_batch_size=1))
    async with c:
        await asyncio.gather(*(c.post("/v2/models/slow/infer", json=_row(i)) for i in range(8)))
    await repo.close()
    assert model.calls == [1] * 8


async def test_full_queue_answers_503_instead_of_growing() -> None:
    model = _SlowModel("slow", 0.2)
    c, repo = await _slow_client(model, BatchingOptions(max_batch_size=1, max_queue_size=2))
    async with c:
        replies = await asyncio.gather(
            *(c.post("/v2/models/slow/infer", json=_row(i)) for i in range(8))
        )
    await repo.close()
    codes = sorted(r.status_code for r in replies)
    assert 503 in codes and 200 in codes
    busy = next(r for r in replies if r.status_code == 503)
    assert "queued" in busy.json()["error"]
    from wonderland.inference.metrics import render

    assert 'inference_queue_depth{model_name="slow"} 0.0' in render().decode()


async def test_max_latency_waits_to_fill_a_batch() -> None:
    model = _SlowModel("slow", 0.0)
    c, repo = await _slow_client(model, BatchingOptions(max_batch_size=4, max_latency_ms=300))
    async with c:
        first = asyncio.ensure_future(c.post("/v2/models/slow/infer", json=_row(1)))
        await asyncio.sleep(0.05)  # the rest arrive later, within max_latency
        rest = [
            asyncio.ensure_future(c.post("/v2/models/slow/infer", json=_row(i))) for i in range(3)
        ]
        await asyncio.gather(first, *rest)
    await repo.close()
    assert model.calls == [4]


async def test_model_that_is_not_loaded_yet_is_503(iris_dir: Path) -> None:
    repo = ModelRepository([ModelSource("iris", iris_dir)])
    app = RestApp(DataPlane(repo))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/v2/health/ready")).status_code == 503
        await repo.load("iris")
        assert (await c.get("/v2/health/ready")).status_code == 200
    await repo.close()


class _Upper(ArrayModel):
    """Texts in, upper-cased texts out (BYTES both ways)."""

    platform = "test"

    def __init__(self) -> None:
        super().__init__("upper", Path("."))

    def load(self) -> None:
        pass

    def predict_arrays(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        x = self.first_input(inputs)
        out = np.empty(x.shape, dtype=object)
        out[:] = [v.upper() for v in x.reshape(-1)]
        return {"output-0": out}

    def v1_inputs(self, instances: Any) -> dict[str, np.ndarray[Any, Any]]:
        arr = np.empty(len(instances), dtype=object)
        arr[:] = [s.encode() for s in instances]
        return {"input-0": arr}


async def test_bytes_tensors_round_trip_over_v1_and_v2_json() -> None:
    repo = ModelRepository()
    repo.add_model(_Upper())
    app = RestApp(DataPlane(repo))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/v1/models/upper:predict", json={"instances": ["ab", "héllo"]})
        assert r.json() == {"predictions": ["AB", "HéLLO"]}  # bytes.upper: ASCII only
        body = {"inputs": [{"name": "t", "shape": [2], "datatype": "BYTES", "data": ["x", "yz"]}]}
        r = await c.post("/v2/models/upper/infer", json=body)
        assert r.json()["outputs"][0] == {
            "name": "output-0",
            "datatype": "BYTES",
            "shape": [2],
            "data": ["X", "YZ"],
        }
    await repo.close()


FOREIGN = textwrap.dedent(
    """
    import numpy as np

    class _Out:  # the shape of kserve.InferOutput
        def __init__(self, name, data):
            self.name, self.datatype, self.data = name, "FP64", data
            self.shape = list(np.shape(data))

        def as_numpy(self):
            return np.asarray(self.data)

    class _Response:  # the shape of kserve.InferResponse
        def __init__(self, outputs, rid):
            self.infer_outputs, self.id = outputs, rid

    class Halver:
        def predict(self, request, headers=None):
            x = request.inputs[0].as_numpy()
            return _Response([_Out("half", (x / 2).tolist())], request.id)
    """
)


async def test_kserve_style_response_objects_are_accepted(tmp_path: Path) -> None:
    d = tmp_path / "halver"
    d.mkdir()
    (d / "model.py").write_text(FOREIGN)
    repo = ModelRepository([ModelSource("halver", d)])
    await repo.load("halver")
    app = RestApp(DataPlane(repo))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        body = {
            "id": "h",
            "inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [2, 5]}],
        }
        r = await c.post("/v2/models/halver/infer", json=body)
    await repo.close()
    assert r.json()["id"] == "h"
    assert r.json()["outputs"] == [
        {"name": "half", "datatype": "FP64", "shape": [2], "data": [1.0, 2.5]}
    ]


BLOCKING = textwrap.dedent(
    """
    import threading

    RELEASE = threading.Event()
    ENTERED = threading.Event()

    class Waiter:
        def predict(self, payload, headers=None):
            # Sync model code that blocks until the test lets it go.
            ENTERED.set()
            if not RELEASE.wait(30):
                raise RuntimeError("never released")
            return payload["instances"]
    """
)


async def test_sync_model_code_does_not_block_the_event_loop(tmp_path: Path) -> None:
    import sys

    d = tmp_path / "waiter"
    d.mkdir()
    (d / "model.py").write_text(BLOCKING)
    repo = ModelRepository([ModelSource("waiter", d)])
    [entry] = await repo.load("waiter")
    module = sys.modules[type(entry.model.obj).__module__]  # type: ignore[union-attr]
    release, entered = module.RELEASE, module.ENTERED
    app = RestApp(DataPlane(repo))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        predict = asyncio.ensure_future(
            c.post("/v1/models/waiter:predict", json={"instances": [1]})
        )
        await wait_until(entered.is_set, 10, "the model to be in predict")
        # While the model is stuck in predict, the server still answers; if the model ran
        # on the event loop this request could never complete (the test would time out).
        live = await c.get("/v2/health/live")
        assert live.status_code == 200
        assert not predict.done()
        release.set()
        assert (await predict).json() == {"predictions": [1]}
    await repo.close()


async def test_an_empty_repository_is_ready_and_can_load_later(
    tmp_path: Path, iris_dir: Path
) -> None:
    repo = ModelRepository(root=tmp_path)
    app = RestApp(DataPlane(repo))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/v2/health/ready")).status_code == 503  # still starting
        await repo.load_all()
        assert (await c.get("/v2/health/ready")).json() == {"ready": True}
        shutil.copytree(iris_dir, tmp_path / "iris")
        assert (await c.post("/v2/repository/models/iris/load")).status_code == 200
        assert (await c.get("/v1/models/iris")).json() == {"name": "iris", "ready": True}
    await repo.close()


async def test_transformer_without_predictor_host_says_what_to_do(tmp_path: Path) -> None:
    from wonderland.inference.errors import ModelConfigError

    d = tmp_path / "t"
    d.mkdir()
    (d / "model.py").write_text(
        "class T:\n    def preprocess(self, p, h=None):\n        return p\n"
    )
    repo = ModelRepository([ModelSource("t", d)])
    with pytest.raises(ModelConfigError, match="--predictor_host"):
        await repo.load("t")


async def test_load_cannot_reach_outside_the_repository(client: httpx.AsyncClient) -> None:
    for name in ("..", ".hidden", "a%2F..%2F..%2Fetc"):
        r = await client.post(f"/v2/repository/models/{name}/load")
        assert r.status_code == 404, name


def test_rest_server_metrics_label_routes_not_paths() -> None:
    from wonderland.inference.rest import route_template

    assert route_template("/v2/models/iris/infer") == "/v2/models/{model_name}/infer"
    assert (
        route_template("/v2/models/iris/versions/2/infer")
        == "/v2/models/{model_name}/versions/{model_version}/infer"
    )
    assert route_template("/v2/models/iris") == "/v2/models/{model_name}"
    assert route_template("/v1/models/iris:predict") == "/v1/models/{model_name}:predict"
    assert route_template("/v2/repository/models/iris/load") == (
        "/v2/repository/models/{model_name}/load"
    )
    assert route_template("/v2/health/ready") == "/v2/health/ready"
    # a scanner's paths are one series, not one each
    assert route_template("/wp-login.php") == route_template("/v2/models/x/y/z") == "<unmatched>"
