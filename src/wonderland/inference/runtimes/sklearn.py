"""scikit-learn runtime: ``model.joblib`` / ``model.pkl``, as KServe's sklearnserver, and
``model.skops`` (skops' safe format, what MLflow 3 logs by default), loaded only when
every type in it is trusted: skops' defaults plus the ``skops_trusted_types`` the model
was logged with (an MLflow model folder's ``MLmodel`` says which).

``PREDICT_PROBA=true`` in the environment (KServe's switch) or the ``predict_proba``
option serves class probabilities instead of labels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from wonderland.inference.errors import ModelConfigError
from wonderland.inference.model import ArrayModel
from wonderland.inference.runtimes import model_file
from wonderland.inference.types import TensorMetadata

__all__ = ["SKLearnRuntime", "load_estimator", "load_skops"]

SUFFIXES = (".joblib", ".pkl", ".pickle", ".skops")


def load_skops(path: Path, trusted: list[str] | None) -> Any:
    """The object in a skops file, refused (:class:`ModelConfigError`) when it holds a
    type neither skops nor ``trusted`` trusts; never unpickles."""
    try:
        import skops.io as sio
    except ImportError:
        raise ModelConfigError(
            f"{path.name} is a skops file and skops is not installed; install the "
            "wonderland[mlflow] extra (or pip install skops)"
        ) from None
    trusted = list(trusted or [])
    try:
        untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in trusted]
    except Exception as exc:
        raise ModelConfigError(f"{path} is not a readable skops file: {exc}") from None
    if untrusted:
        raise ModelConfigError(
            f"{path.name} holds types skops does not trust: {', '.join(untrusted)}; if you "
            "trust them, log the model again naming them, e.g. mlflow.sklearn.log_model(..., "
            f"skops_trusted_types={untrusted!r})"
        )
    return sio.load(path, trusted=trusted)


def load_estimator(path: Path, serialization_format: str = "", trusted: Any = None) -> Any:
    """An estimator from ``model.skops`` (:func:`load_skops`), ``.joblib`` or a pickle
    (pickle or cloudpickle: storage has already refused remote pickles not opted in)."""
    if path.suffix == ".skops" or serialization_format == "skops":
        return load_skops(path, list(trusted or []))
    if path.suffix == ".joblib":
        import joblib

        return joblib.load(path)
    import pickle

    with path.open("rb") as f:
        return pickle.load(f)


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
        path = model_file(self.model_dir, SUFFIXES, "sklearn")
        fmt, trusted = "", None
        if (self.model_dir / "MLmodel").is_file():
            from wonderland.inference.mlmodel import read_mlmodel

            mlmodel = read_mlmodel(self.model_dir)
            if mlmodel is not None:
                conf = mlmodel.conf("sklearn")
                fmt = str(conf.get("serialization_format") or "")
                trusted = conf.get("skops_trusted_types")
        self._model = load_estimator(path, fmt, trusted)
        self._n_features = getattr(self._model, "n_features_in_", None)
        fn = self._model.predict_proba if self.predict_proba else self._model.predict
        self._predict = fn

    def predict_arrays(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        return {"output-0": np.asarray(self._predict(self.first_input(inputs)))}

    def inputs_metadata(self) -> list[TensorMetadata]:
        return [TensorMetadata("input-0", "FP64", [-1, self._n_features or -1])]

    def outputs_metadata(self) -> list[TensorMetadata]:
        return [TensorMetadata("output-0", "FP64" if self.predict_proba else "INT64", [-1])]
