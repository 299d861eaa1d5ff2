"""PyTorch runtime: a TorchScript module (``torch.jit.save``) in ``model.pt``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wonderland.inference.model import ArrayModel
from wonderland.inference.runtimes import model_file

__all__ = ["TorchScriptRuntime"]


class TorchScriptRuntime(ArrayModel):
    """Serves TorchScript on CPU; inputs are passed positionally in request order."""

    platform = "pytorch_torchscript"

    def __init__(
        self, name: str, model_dir: Path, version: str | None = None, nthread: int = 1, **_: Any
    ) -> None:
        super().__init__(name, model_dir, version)
        self.nthread = nthread
        self._module: Any = None

    def load(self) -> None:
        import torch

        torch.set_num_threads(self.nthread)
        path = model_file(self.model_dir, (".pt", ".pth", ".torchscript"), "pytorch")
        module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
        module.eval()
        self.use(module)

    def use(self, module: Any) -> None:
        """Serve ``module`` (any callable torch module, loaded elsewhere)."""
        import torch

        self._module = module
        self._torch = torch

    def predict_arrays(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        torch = self._torch
        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in inputs.values()]
        with torch.inference_mode():
            result = self._module(*tensors)
        if isinstance(result, dict):
            return {k: v.numpy() for k, v in result.items()}
        if isinstance(result, (tuple, list)):
            return {f"output-{i}": v.numpy() for i, v in enumerate(result)}
        return {"output-0": result.numpy()}
