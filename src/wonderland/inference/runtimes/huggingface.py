"""Hugging Face runtime: a local model folder with ``config.json``, served offline.

The folder's task picks the model (KServe's ``--task``, read from ``config.json``'s
``architectures`` when not given): a causal language model (``...ForCausalLM``,
``...LMHeadModel``) is served for text generation (:mod:`wonderland.inference.generation`:
the OpenAI completions and chat routes, Triton's generate); anything else as text
embeddings. A sentence-transformers folder (``modules.json``) is served as text embeddings; any other
folder through ``transformers.AutoModel`` with mean pooling. Input: a BYTES tensor of
texts (V2) or a list of strings (V1 ``instances``); output ``output-0``: FP32 ``[n, dim]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from wonderland.inference.errors import InvalidInputError, ModelConfigError
from wonderland.inference.generation import TextGenerationModel, is_causal_lm
from wonderland.inference.model import ArrayModel
from wonderland.inference.types import TensorMetadata

__all__ = ["TASKS", "HuggingFaceRuntime", "create"]

TASKS = ("text_generation", "text_embedding")


def create(
    name: str, model_dir: Path, version: str | None = None, task: str | None = None, **options: Any
) -> HuggingFaceRuntime | TextGenerationModel:
    """The model for a Hugging Face folder, by its task (given, or read from its config)."""
    if task is None:
        task = "text_generation" if is_causal_lm(model_dir) else "text_embedding"
    if task == "text_generation":
        return TextGenerationModel(name, model_dir, version, **options)
    if task == "text_embedding":
        return HuggingFaceRuntime(name, model_dir, version, **options)
    raise ModelConfigError(
        f"task {task!r} is not served for Hugging Face models; tasks: {', '.join(TASKS)}"
    )


class HuggingFaceRuntime(ArrayModel):
    """Text embeddings from a local Hugging Face model folder."""

    platform = "huggingface"

    def __init__(
        self, name: str, model_dir: Path, version: str | None = None, nthread: int = 1, **_: Any
    ) -> None:
        super().__init__(name, model_dir, version)
        self.nthread = nthread
        self._encode: Any = None
        self._tokenizer: Any = None
        self._dim = -1

    @property
    def dimension(self) -> int:
        """The length of one embedding."""
        return self._dim

    def count_tokens(self, texts: list[str]) -> int:
        """The tokens the model reads for ``texts`` (the usage of an embeddings request)."""
        ids = self._tokenizer(texts, truncation=True)["input_ids"]
        return sum(len(x) for x in ids)

    def load(self) -> None:
        # A served model never reaches out to the Hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch

        torch.set_num_threads(self.nthread)
        if (self.model_dir / "modules.json").is_file():
            from sentence_transformers import SentenceTransformer

            st = SentenceTransformer(str(self.model_dir), device="cpu")
            self._tokenizer = st.tokenizer

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
            self._tokenizer = tok

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
