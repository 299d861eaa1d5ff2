"""LightGBM runtime: a Booster saved as text (``model.txt``), as KServe's lgbserver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wonderland.inference.model import ArrayModel
from wonderland.inference.runtimes import model_file
from wonderland.inference.types import TensorMetadata

__all__ = ["LightGBMRuntime"]


class LightGBMRuntime(ArrayModel):
    """Serves a LightGBM Booster."""

    platform = "lightgbm"

    def __init__(
        self, name: str, model_dir: Path, version: str | None = None, nthread: int = 1, **_: Any
    ) -> None:
        super().__init__(name, model_dir, version)
        self.nthread = nthread
        self._booster: Any = None

    def load(self) -> None:
        import lightgbm as lgb

        path = model_file(self.model_dir, (".txt",), "lightgbm")
        self._booster = lgb.Booster(model_file=str(path))

    def predict_arrays(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        out = self._booster.predict(self.first_input(inputs), num_threads=self.nthread)
        return {"output-0": np.asarray(out)}

    def inputs_metadata(self) -> list[TensorMetadata]:
        return [TensorMetadata("input-0", "FP64", [-1, self._booster.num_feature()])]

    def outputs_metadata(self) -> list[TensorMetadata]:
        return [TensorMetadata("output-0", "FP64", [-1])]
