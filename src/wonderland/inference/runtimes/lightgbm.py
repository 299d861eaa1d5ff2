"""LightGBM runtime: a Booster saved as text (``model.txt``), as KServe's lgbserver; in an
MLflow model folder, the lightgbm flavour's file (a Booster's text, or an LGBMClassifier
/LGBMRegressor in skops or pickle form, served through its Booster)."""

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
        if (self.model_dir / "MLmodel").is_file():
            from wonderland.inference.mlmodel import read_mlmodel
            from wonderland.inference.runtimes.sklearn import load_estimator

            mlmodel = read_mlmodel(self.model_dir)
            conf = mlmodel.conf("lightgbm") if mlmodel is not None else {}
            if str(conf.get("model_class") or "lightgbm.basic.Booster") != "lightgbm.basic.Booster":
                estimator = load_estimator(
                    path,
                    str(conf.get("serialization_format") or ""),
                    conf.get("skops_trusted_types"),
                )
                self._booster = estimator.booster_
                return
        self._booster = lgb.Booster(model_file=str(path))

    def predict_arrays(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        out = self._booster.predict(self.first_input(inputs), num_threads=self.nthread)
        return {"output-0": np.asarray(out)}

    def num_features(self) -> int:
        return int(self._booster.num_feature())
