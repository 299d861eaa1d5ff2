"""One place counts and times a request: the DataPlane, whichever protocol adapter calls it
(as MLServer's DataPlane does), and the data plane knows no wire format."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from wonderland.inference.dataplane import DataPlane, Wire
from wonderland.inference.errors import InvalidInputError
from wonderland.inference.repository import ModelRepository
from wonderland.inference.types import InferInput, InferRequest, InferResponse

from .conftest import IRIS_ROWS

MODEL = "iris-counted"


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_new_adapter_is_counted_and_timed_by_the_data_plane(
    iris_dir: Path, tmp_path: Path
) -> None:
    """An adapter that brings only its codec (here: Python lists in, a list out) gets the
    request counter in its own terms, the stage histograms and MLServer's counters."""
    shutil.copytree(iris_dir, tmp_path / "repo" / MODEL)
    repo = ModelRepository(root=tmp_path / "repo")
    await repo.load_all()
    dp = DataPlane(repo)
    wire = Wire("lists", grpc=False)

    def decode() -> InferRequest:
        arr = np.asarray(IRIS_ROWS, dtype=np.float32)
        return InferRequest(MODEL, [InferInput("input-0", list(arr.shape), "FP32", arr)])

    def encode(response: InferResponse, request: InferRequest) -> list[int]:
        return [int(v) for v in response.outputs[0].data]

    def bad() -> InferRequest:
        raise InvalidInputError("not a list")

    before = {
        "pre": _value("request_preprocess_seconds_count", model_name=MODEL),
        "post": _value("request_postprocess_seconds_count", model_name=MODEL),
        "ok": _value("model_infer_request_success_total", model=MODEL, version=""),
        "failed": _value("model_infer_request_failure_total", model=MODEL, version=""),
    }
    for _ in range(3):
        assert len(await dp.serve_infer(wire, MODEL, None, decode, encode)) == len(IRIS_ROWS)
    with pytest.raises(InvalidInputError):
        await dp.serve_infer(wire, MODEL, None, bad, encode)

    ok = _value("inference_requests_total", model_name=MODEL, protocol="lists", code="200")
    rejected = _value("inference_requests_total", model_name=MODEL, protocol="lists", code="400")
    assert (ok, rejected) == (3, 1)
    # the codec is timed as KServe's pre- and post-processing stages
    assert _value("request_preprocess_seconds_count", model_name=MODEL) - before["pre"] == 3
    assert _value("request_postprocess_seconds_count", model_name=MODEL) - before["post"] == 3
    # MLServer's counters see what reached the model: a request that did not decode did not
    ok_total = _value("model_infer_request_success_total", model=MODEL, version="")
    failed_total = _value("model_infer_request_failure_total", model=MODEL, version="")
    assert ok_total - before["ok"] == 3
    assert failed_total == before["failed"]


def test_a_grpc_wire_names_outcomes_by_status_name() -> None:
    wire = Wire("grpc", grpc=True)
    assert wire.ok == "OK"
    assert wire.code(InvalidInputError("x")) == "INVALID_ARGUMENT"
    assert wire.code(RuntimeError("bug")) == "INTERNAL"


def test_the_data_plane_imports_no_wire_codec() -> None:
    code = (
        "import sys, wonderland.inference.dataplane\n"
        "print(sorted(m for m in sys.modules if m.startswith('wonderland.inference.codec')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
