"""modelFormat mlflow: models saved by the real mlflow, one per flavour, served through the
DataPlane; V2 metadata from their signatures; the built-in formats on MLflow folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from _support.mlflow import needs_mlflow

from wonderland.inference.dataplane import DataPlane
from wonderland.inference.repository import ModelRepository, ModelSource
from wonderland.inference.runtimes import detect_format
from wonderland.inference.types import InferInput, InferRequest

from .conftest import IRIS_ROWS

pytestmark = [needs_mlflow, pytest.mark.filterwarnings("ignore")]

ROWS = np.asarray(IRIS_ROWS, dtype=np.float64)
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


class Doubler:
    """A transformer skops does not know (so it is untrusted)."""

    def fit(self, x: Any, y: Any = None) -> Doubler:
        return self

    def transform(self, x: Any) -> Any:
        return np.asarray(x) * 2


async def _infer(
    path: Path, inputs: list[InferInput] | None = None, fmt: str | None = None
) -> dict[str, Any]:
    repo = ModelRepository([ModelSource("m", path, fmt)])
    try:
        await repo.load("m")
        dp = DataPlane(repo)
        inputs = inputs or [InferInput("input-0", [3, 4], "FP64", ROWS)]
        response = await dp.infer(InferRequest("m", inputs))
        return {
            "outputs": {o.name: o.data for o in response.outputs},
            "meta": dp.model_metadata("m"),
        }
    finally:
        await repo.close()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One folder per flavour (saved once: importing mlflow takes seconds)."""
    import lightgbm as lgb
    import mlflow.lightgbm
    import mlflow.onnx
    import mlflow.pyfunc
    import mlflow.pytorch
    import mlflow.sklearn
    import mlflow.xgboost
    import pandas as pd
    import torch
    import xgboost as xgb
    from mlflow.models import infer_signature
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    root = tmp_path_factory.mktemp("mlflow-models")
    x, y = load_iris(return_X_y=True)
    out: dict[str, Any] = {"root": root}
    sk = LogisticRegression(max_iter=500).fit(x, y)
    out["sk_expected"] = sk.predict(ROWS).tolist()
    mlflow.sklearn.save_model(
        sk, root / "sk", signature=infer_signature(x, sk.predict(x)), pip_requirements=[]
    )
    df = pd.DataFrame(x, columns=COLUMNS)
    skdf = LogisticRegression(max_iter=500).fit(df, y)
    mlflow.sklearn.save_model(
        skdf, root / "skdf", signature=infer_signature(df, skdf.predict(df)), pip_requirements=[]
    )
    mlflow.sklearn.save_model(
        sk, root / "skpickle", serialization_format="cloudpickle", pip_requirements=[]
    )
    untrusted = make_pipeline(FunctionTransformer(), LogisticRegression(max_iter=500))
    untrusted.steps[0] = ("doubler", Doubler())
    untrusted.fit(x, y)
    # mlflow refuses to save untrusted types unless named; the MLmodel then loses the list
    # (as a model logged elsewhere, or edited, would)
    trusted = [f"{Doubler.__module__}.Doubler"]
    mlflow.sklearn.save_model(
        untrusted, root / "untrusted", skops_trusted_types=trusted, pip_requirements=[]
    )
    mlmodel = root / "untrusted" / "MLmodel"
    conf = yaml.safe_load(mlmodel.read_text())
    conf["flavors"]["sklearn"]["skops_trusted_types"] = None
    mlmodel.write_text(yaml.safe_dump(conf))
    out["trusted"] = root / "trusted"
    mlflow.sklearn.save_model(
        untrusted, root / "trusted", skops_trusted_types=trusted, pip_requirements=[]
    )

    xc = xgb.XGBClassifier(n_estimators=5, n_jobs=1).fit(x, y)
    out["xgb_expected"] = xc.predict(ROWS).tolist()
    mlflow.xgboost.save_model(
        xc,
        root / "xgb",
        signature=infer_signature(x.astype(np.float32), xc.predict(x)),
        pip_requirements=[],
    )
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1}, lgb.Dataset(x, y), 5
    )
    out["lgb_expected"] = booster.predict(ROWS)
    mlflow.lightgbm.save_model(
        booster, root / "lgb", signature=infer_signature(x, booster.predict(x)), pip_requirements=[]
    )
    mlflow.onnx.save_model(
        to_onnx(sk, x[:1].astype(np.float32), options={"zipmap": False}),
        root / "onnx",
        pip_requirements=[],
    )
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    xt = x.astype(np.float32)
    out["torch_expected"] = net(torch.from_numpy(ROWS.astype(np.float32))).detach().numpy()
    mlflow.pytorch.save_model(
        net,
        root / "torch",
        signature=infer_signature(xt, net(torch.from_numpy(xt)).detach().numpy()),
        serialization_format="pickle",
        pip_requirements=[],
    )

    class AddOne(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return np.asarray(model_input, dtype=np.float64) + 1

    mlflow.pyfunc.save_model(
        root / "pyfunc",
        python_model=AddOne(),
        signature=infer_signature(x, x + 1),
        pip_requirements=[],
    )
    return out


async def test_sklearn_skops_tensor_signature(models: dict[str, Any]) -> None:
    path = models["root"] / "sk"
    assert detect_format(path) == "mlflow"
    out = await _infer(path)
    assert out["outputs"]["output-0"].tolist() == models["sk_expected"]
    meta = out["meta"]
    assert meta["platform"] == "mlflow"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert meta["outputs"] == [{"name": "output-0", "datatype": "INT64", "shape": [-1]}]
    # the same folder through the sklearn runtime, found through MLmodel
    out = await _infer(path, fmt="sklearn")
    assert out["outputs"]["output-0"].tolist() == models["sk_expected"]


async def test_column_signature_takes_columns_or_one_matrix(models: dict[str, Any]) -> None:
    path = models["root"] / "skdf"
    out = await _infer(path)  # one 2-D FP64 tensor input-0 [3, 4]
    assert out["outputs"]["output-0"].tolist() == models["sk_expected"]
    assert out["meta"]["inputs"] == [
        {"name": c, "datatype": "FP64", "shape": [-1]} for c in COLUMNS
    ]
    per_column = [
        InferInput(c, [3], "FP64", np.ascontiguousarray(ROWS[:, i])) for i, c in enumerate(COLUMNS)
    ]
    out = await _infer(path, per_column)
    assert out["outputs"]["output-0"].tolist() == models["sk_expected"]
    with pytest.raises(Exception, match="missing petal_width"):
        await _infer(path, per_column[:3])


async def test_local_pickle_loads_and_untrusted_skops_is_refused(models: dict[str, Any]) -> None:
    out = await _infer(models["root"] / "skpickle")
    assert out["outputs"]["output-0"].tolist() == models["sk_expected"]
    with pytest.raises(Exception, match=r"does not trust: .*Doubler.*skops_trusted_types"):
        await _infer(models["root"] / "untrusted")
    # named at log time: loads
    out = await _infer(models["root"] / "trusted")
    assert len(out["outputs"]["output-0"]) == 3


async def test_xgboost_lightgbm_onnx_torch_pyfunc(models: dict[str, Any]) -> None:
    root = models["root"]
    out = await _infer(root / "xgb")
    assert out["outputs"]["output-0"].tolist() == models["xgb_expected"]
    assert out["meta"]["inputs"][0] == {"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}
    out = await _infer(root / "lgb")
    np.testing.assert_allclose(out["outputs"]["output-0"], models["lgb_expected"], rtol=1e-6)
    assert out["meta"]["outputs"] == [{"name": "output-0", "datatype": "FP64", "shape": [-1, 3]}]
    out = await _infer(root / "onnx")
    assert out["outputs"]["label"].tolist() == models["sk_expected"]
    assert out["meta"]["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    out = await _infer(root / "torch")
    np.testing.assert_allclose(out["outputs"]["output-0"], models["torch_expected"], rtol=1e-5)
    assert out["meta"]["outputs"] == [{"name": "output-0", "datatype": "FP32", "shape": [-1, 3]}]
    out = await _infer(root / "pyfunc")
    np.testing.assert_allclose(out["outputs"]["output-0"], ROWS + 1)


@pytest.mark.parametrize("fmt", ["xgboost", "lightgbm", "onnx"])
async def test_builtin_formats_serve_mlflow_folders(models: dict[str, Any], fmt: str) -> None:
    folder = {"xgboost": "xgb", "lightgbm": "lgb", "onnx": "onnx"}[fmt]
    x = [InferInput("input-0", [3, 4], "FP32", ROWS.astype(np.float32))]
    out = await _infer(models["root"] / folder, x, fmt=fmt)
    assert out["meta"]["platform"] != "mlflow"
    first = next(iter(out["outputs"].values()))
    assert len(first) == 3
    with pytest.raises(Exception, match="without a sklearn flavour"):
        await _infer(models["root"] / folder, fmt="sklearn")
