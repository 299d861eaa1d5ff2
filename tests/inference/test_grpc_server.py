"""The gRPC adapter in-process: status codes, backpressure and repository index."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wonderland.inference.dataplane import DataPlane
from wonderland.inference.grpc_server import create_grpc_server
from wonderland.inference.model import ArrayModel
from wonderland.inference.repository import BatchingOptions, ModelRepository


class _Slow(ArrayModel):
    platform = "test"

    def __init__(self) -> None:
        super().__init__("slow", Path("."))

    def load(self) -> None:
        pass

    def predict_arrays(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        import time

        time.sleep(0.2)
        return {"output-0": self.first_input(inputs) * 2}


@pytest.fixture
async def address() -> AsyncIterator[str]:
    repo = ModelRepository(batching=BatchingOptions(max_batch_size=1, max_queue_size=2))
    repo.add_model(_Slow())
    server = create_grpc_server(DataPlane(repo))
    port = await server.start("127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)
        await repo.close()


async def test_full_queue_is_unavailable_and_the_rest_succeed(address: str) -> None:
    import tritonclient.grpc.aio as tga
    from tritonclient.utils import InferenceServerException

    client = tga.InferenceServerClient(address)
    inp = tga.InferInput("x", [1, 2], "FP32")
    inp.set_data_from_numpy(np.array([[1, 2]], dtype=np.float32))
    results = await asyncio.gather(
        *(client.infer("slow", [inp]) for _ in range(8)), return_exceptions=True
    )
    await client.close()
    ok = [r for r in results if not isinstance(r, BaseException)]
    busy = [r for r in results if isinstance(r, InferenceServerException)]
    assert ok and busy and len(ok) + len(busy) == 8
    assert ok[0].as_numpy("output-0").tolist() == [[2.0, 4.0]]
    assert all("UNAVAILABLE" in str(e.status()) for e in busy)


async def test_metadata_index_and_not_found(address: str) -> None:
    import tritonclient.grpc.aio as tga
    from tritonclient.utils import InferenceServerException

    client = tga.InferenceServerClient(address)
    index = await client.get_model_repository_index()
    assert [(m.name, m.state) for m in index.models] == [("slow", "READY")]
    assert await client.is_model_ready("slow")
    with pytest.raises(InferenceServerException) as err:
        await client.get_model_metadata("ghost")
    assert "NOT_FOUND" in str(err.value.status())
    with pytest.raises(InferenceServerException) as err:
        await client.load_model("ghost")
    assert "NOT_FOUND" in str(err.value.status())
    await client.close()


class _Scaler:
    """A custom model object with KServe's hook names (async predict)."""

    def preprocess(self, request: Any, headers: Any = None) -> Any:
        return request.inputs[0].as_numpy()

    async def predict(self, x: Any, headers: Any = None) -> Any:
        return x * 10


async def test_custom_model_over_grpc_raw_contents() -> None:
    import tritonclient.grpc.aio as tga

    from wonderland.inference.model import CustomModel

    repo = ModelRepository()
    repo.add_model(CustomModel("scaler", _Scaler()))
    server = create_grpc_server(DataPlane(repo))
    port = await server.start("127.0.0.1", 0)
    try:
        client = tga.InferenceServerClient(f"127.0.0.1:{port}")
        inp = tga.InferInput("x", [3], "INT64")
        inp.set_data_from_numpy(np.array([1, 2, 3], dtype=np.int64))
        result = await client.infer("scaler", [inp], request_id="s1")
        await client.close()
    finally:
        await server.stop(None)
        await repo.close()
    assert result.as_numpy("output-0").tolist() == [10, 20, 30]
    assert result.get_response().id == "s1"
