"""XGBoost runtime: a Booster saved as ``.bst``, ``.json`` or ``.ubj`` (KServe's xgbserver)."""

from __future__ import annotations

from typing import Any

import numpy as np

from wonderland.inference.runtimes import model_file
from wonderland.inference.runtimes._booster import BoosterRuntime

__all__ = ["XGBoostRuntime"]


class XGBoostRuntime(BoosterRuntime):
    """Serves an XGBoost Booster; predicts through ``inplace_predict`` (no DMatrix copy)."""

    platform = "xgboost"
    DATATYPE = "FP32"

    def load(self) -> None:
        import xgboost as xgb

        path = model_file(self.model_dir, (".bst", ".json", ".ubj"), "xgboost")
        booster = xgb.Booster(params={"nthread": self.nthread})
        booster.load_model(str(path))
        self._booster = booster

    def predict_arrays(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        return {"output-0": np.asarray(self._booster.inplace_predict(self.first_input(inputs)))}

    def num_features(self) -> int:
        return int(self._booster.num_features())
