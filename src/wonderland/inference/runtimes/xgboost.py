"""XGBoost runtime: a Booster saved as ``.bst``, ``.json`` or ``.ubj`` (KServe's xgbserver)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wonderland.inference.model import ArrayModel
from wonderland.inference.runtimes import model_file
from wonderland.inference.types import TensorMetadata

__all__ = ["XGBoostRuntime"]


class XGBoostRuntime(ArrayModel):
    """Serves an XGBoost Booster; predicts through ``inplace_predict`` (no DMatrix copy)."""

    platform = "xgboost"

    def __init__(
        self, name: str, model_dir: Path, version: str | None = None, nthread: int = 1, **_: Any
    ) -> None:
        super().__init__(name, model_dir, version)
        self.nthread = nthread
        self._booster: Any = None

    def load(self) -> None:
        import xgboost as xgb

        path = model_file(self.model_dir, (".bst", ".json", ".ubj"), "xgboost")
        booster = xgb.Booster(params={"nthread": self.nthread})
        booster.load_model(str(path))
        self._booster = booster

    def predict_arrays(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        return {"output-0": np.asarray(self._booster.inplace_predict(self.first_input(inputs)))}

    def inputs_metadata(self) -> list[TensorMetadata]:
        return [TensorMetadata("input-0", "FP32", [-1, self._booster.num_features()])]

    def outputs_metadata(self) -> list[TensorMetadata]:
        return [TensorMetadata("output-0", "FP32", [-1])]
