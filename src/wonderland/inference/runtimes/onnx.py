"""ONNX runtime (onnxruntime, CPU): inputs and outputs keep the graph's own names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wonderland.inference.errors import InvalidInputError
from wonderland.inference.model import ArrayModel
from wonderland.inference.runtimes import model_file
from wonderland.inference.types import TensorMetadata

__all__ = ["ONNXRuntime"]

_ORT_TYPES = {
    "tensor(float)": ("FP32", np.float32),
    "tensor(double)": ("FP64", np.float64),
    "tensor(float16)": ("FP16", np.float16),
    "tensor(int8)": ("INT8", np.int8),
    "tensor(int16)": ("INT16", np.int16),
    "tensor(int32)": ("INT32", np.int32),
    "tensor(int64)": ("INT64", np.int64),
    "tensor(uint8)": ("UINT8", np.uint8),
    "tensor(uint16)": ("UINT16", np.uint16),
    "tensor(uint32)": ("UINT32", np.uint32),
    "tensor(uint64)": ("UINT64", np.uint64),
    "tensor(bool)": ("BOOL", np.bool_),
    "tensor(string)": ("BYTES", np.object_),
}


def _dims(shape: list[Any]) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in shape]


class ONNXRuntime(ArrayModel):
    """Serves an ``.onnx`` graph; a single-input graph also accepts any input name."""

    platform = "onnx_onnxv1"

    def __init__(
        self, name: str, model_dir: Path, version: str | None = None, nthread: int = 1, **_: Any
    ) -> None:
        super().__init__(name, model_dir, version)
        self.nthread = nthread
        self._session: Any = None

    def load(self) -> None:
        import onnxruntime as ort

        path = model_file(self.model_dir, (".onnx",), "onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.nthread
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._inputs = self._session.get_inputs()
        self._outputs = self._session.get_outputs()

    def predict_arrays(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        feed: dict[str, Any] = {}
        if len(self._inputs) == 1 and len(inputs) == 1:
            pairs = [(self._inputs[0], next(iter(inputs.values())))]
        else:
            pairs = []
            for meta in self._inputs:
                if meta.name not in inputs:
                    raise InvalidInputError(
                        f"model {self.name!r} needs input {meta.name!r}; request has {list(inputs)}"
                    )
                pairs.append((meta, inputs[meta.name]))
        for meta, arr in pairs:
            want = _ORT_TYPES.get(meta.type)
            if want is not None and want[1] is not np.object_ and arr.dtype != want[1]:
                arr = arr.astype(want[1])
            elif want is not None and want[1] is np.object_:
                arr = np.array([x.decode("utf-8") for x in arr.reshape(-1)]).reshape(arr.shape)
            feed[meta.name] = arr
        results = self._session.run(None, feed)
        out: dict[str, Any] = {}
        for meta, value in zip(self._outputs, results, strict=True):
            if isinstance(value, list):
                # ZipMap outputs (lists of dicts) have no tensor form; skip them.
                continue
            out[meta.name] = value
        return out

    def inputs_metadata(self) -> list[TensorMetadata]:
        return [
            TensorMetadata(m.name, _ORT_TYPES.get(m.type, ("BYTES", None))[0], _dims(m.shape))
            for m in self._inputs
        ]

    def outputs_metadata(self) -> list[TensorMetadata]:
        return [
            TensorMetadata(m.name, _ORT_TYPES.get(m.type, ("BYTES", None))[0], _dims(m.shape))
            for m in self._outputs
            if m.type in _ORT_TYPES
        ]
