"""LightGBM runtime: a Booster saved as text (``model.txt``), as KServe's lgbserver."""

from __future__ import annotations

from typing import Any

import numpy as np

from wonderland.inference.runtimes import model_file
from wonderland.inference.runtimes._booster import BoosterRuntime

__all__ = ["LightGBMRuntime"]


class LightGBMRuntime(BoosterRuntime):
    """Serves a LightGBM Booster."""

    platform = "lightgbm"
    DATATYPE = "FP64"

    def load(self) -> None:
        import lightgbm as lgb

        path = model_file(self.model_dir, (".txt",), "lightgbm")
        self._booster = lgb.Booster(model_file=str(path))

    def predict_arrays(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        out = self._booster.predict(self.first_input(inputs), num_threads=self.nthread)
        return {"output-0": np.asarray(out)}

    def num_features(self) -> int:
        return int(self._booster.num_feature())
