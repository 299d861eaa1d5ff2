"""scikit-learn runtime: ``model.joblib`` / ``model.pkl``, as KServe's sklearnserver.

``PREDICT_PROBA=true`` in the environment (KServe's switch) or the ``predict_proba``
option serves class probabilities instead of labels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from wonderland.inference.model import ArrayModel
from wonderland.inference.runtimes import model_file
from wonderland.inference.types import TensorMetadata

__all__ = ["SKLearnRuntime"]


class SKLearnRuntime(ArrayModel):
    """Serves a pickled/joblib scikit-learn estimator or pipeline."""

    platform = "sklearn"

    def __init__(
        self,
        name: str,
        model_dir: Path,
        version: str | None = None,
        predict_proba: bool | None = None,
        **_: Any,
    ) -> None:
        super().__init__(name, model_dir, version)
        if predict_proba is None:
            predict_proba = os.environ.get("PREDICT_PROBA", "false").lower() == "true"
        self.predict_proba = predict_proba
        self._model: Any = None
        self._n_features: int | None = None

    def load(self) -> None:
        path = model_file(self.model_dir, (".joblib", ".pkl", ".pickle"), "sklearn")
        if path.suffix == ".joblib":
            import joblib

            self._model = joblib.load(path)
        else:
            import pickle

            with path.open("rb") as f:
                self._model = pickle.load(f)
        self._n_features = getattr(self._model, "n_features_in_", None)
        fn = self._model.predict_proba if self.predict_proba else self._model.predict
        self._predict = fn

    def predict_arrays(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        return {"output-0": np.asarray(self._predict(self.first_input(inputs)))}

    def inputs_metadata(self) -> list[TensorMetadata]:
        return [TensorMetadata("input-0", "FP64", [-1, self._n_features or -1])]

    def outputs_metadata(self) -> list[TensorMetadata]:
        return [TensorMetadata("output-0", "FP64" if self.predict_proba else "INT64", [-1])]
