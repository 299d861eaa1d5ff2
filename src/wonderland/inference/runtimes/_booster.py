"""What the gradient-boosting runtimes (xgboost, lightgbm) share: one Booster per model,
a thread count, and a single input and output tensor of one datatype."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from wonderland.inference.model import ArrayModel
from wonderland.inference.types import TensorMetadata

__all__ = ["BoosterRuntime"]


class BoosterRuntime(ArrayModel):
    """A model served by one Booster loaded in :meth:`load`; its metadata names ``input-0``
    (``[-1, features]``) and ``output-0`` (``[-1]``) in :attr:`DATATYPE`."""

    DATATYPE: ClassVar[str]

    def __init__(
        self, name: str, model_dir: Path, version: str | None = None, nthread: int = 1, **_: Any
    ) -> None:
        super().__init__(name, model_dir, version)
        self.nthread = nthread
        self._booster: Any = None

    def num_features(self) -> int:
        """How many features one row of ``input-0`` has (the loaded Booster knows)."""
        raise NotImplementedError

    def inputs_metadata(self) -> list[TensorMetadata]:
        return [TensorMetadata("input-0", self.DATATYPE, [-1, self.num_features()])]

    def outputs_metadata(self) -> list[TensorMetadata]:
        return [TensorMetadata("output-0", self.DATATYPE, [-1])]
