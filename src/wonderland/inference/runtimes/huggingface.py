"""Hugging Face runtime: a local model folder with ``config.json``, served offline.

A sentence-transformers folder (``modules.json``) is served as text embeddings; any other
folder through ``transformers.AutoModel`` with mean pooling. Input: a BYTES tensor of
texts (V2) or a list of strings (V1 ``instances``); output ``output-0``: FP32 ``[n, dim]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from wonderland.inference.errors import InvalidInputError
from wonderland.inference.model import ArrayModel
from wonderland.inference.types import TensorMetadata

__all__ = ["HuggingFaceRuntime"]


class HuggingFaceRuntime(ArrayModel):
    """Text embeddings from a local Hugging Face model folder."""

    platform = "huggingface"

    def __init__(
        self, name: str, model_dir: Path, version: str | None = None, nthread: int = 1, **_: Any
    ) -> None:
        super().__init__(name, model_dir, version)
        self.nthread = nthread
        self._encode: Any = None
        self._dim = -1

    def load(self) -> None:
        # A served model never reaches out to the Hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch

        torch.set_num_threads(self.nthread)
        if (self.model_dir / "modules.json").is_file():
            from sentence_transformers import SentenceTransformer

            st = SentenceTransformer(str(self.model_dir), device="cpu")

            def encode(texts: list[str]) -> Any:
                return st.encode(texts, convert_to_numpy=True)

            dim_of = (
                getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
            )
            self._dim = int(dim_of() or -1)
        else:
            from transformers import AutoModel, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(self.model_dir))
            model = AutoModel.from_pretrained(str(self.model_dir))
            model.eval()

            def encode(texts: list[str]) -> Any:
                batch = tok(texts, padding=True, truncation=True, return_tensors="pt")
                with torch.inference_mode():
                    hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                return ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).numpy()

            self._dim = int(getattr(model.config, "hidden_size", -1))
        self._encode = encode

    def predict_arrays(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        arr = self.first_input(inputs)
        texts = []
        for x in arr.reshape(-1):
            if isinstance(x, bytes):
                texts.append(x.decode("utf-8"))
            elif isinstance(x, str):
                texts.append(x)
            else:
                raise InvalidInputError(f"model {self.name!r} takes texts (BYTES), got {x!r}")
        return {"output-0": np.asarray(self._encode(texts), dtype=np.float32)}

    def v1_inputs(self, instances: Any) -> dict[str, np.ndarray[Any, Any]]:
        if not isinstance(instances, list) or not all(isinstance(x, str) for x in instances):
            raise InvalidInputError("'instances' must be a list of strings for a text model")
        arr = np.empty(len(instances), dtype=object)
        arr[:] = [x.encode("utf-8") for x in instances]
        return {"input-0": arr}

    def inputs_metadata(self) -> list[TensorMetadata]:
        return [TensorMetadata("input-0", "BYTES", [-1])]

    def outputs_metadata(self) -> list[TensorMetadata]:
        return [TensorMetadata("output-0", "FP32", [-1, self._dim])]
