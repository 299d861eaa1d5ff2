"""A tiny causal language model built locally (no hub): random GPT-2 weights, a word-level
tokenizer over a small vocabulary, and a chat template, saved with ``save_pretrained``.

    python tests/_support/tiny_lm.py OUT_DIR [--layers 2] [--width 32]
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["CHAT_TEMPLATE", "WORDS", "build_tiny_lm"]

WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "ran",
    "far",
    "away",
    "and",
    "then",
    "it",
    "was",
    "good",
    "bad",
    "day",
    "night",
    "hello",
    "world",
    "how",
    "are",
    "you",
    "fine",
    "thanks",
    "what",
    "is",
    "this",
    "that",
    "one",
    "two",
    "three",
    "four",
    "five",
    "red",
    "blue",
    "green",
    "big",
    "small",
    "house",
    "tree",
    "sun",
    "moon",
    "star",
    "sky",
    "sea",
    "user",
    "assistant",
    "system",
    ":",
    ".",
    ",",
    "?",
    "!",
]

# ChatML, as many chat models' tokenizers carry it
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} : {{ m['content'] }} <|im_end|> "
    "{% endfor %}{% if add_generation_prompt %}<|im_start|> assistant : {% endif %}"
)


def build_tiny_lm(
    out: Path, layers: int = 2, width: int = 32, context: int = 4096, seed: int = 0
) -> Path:
    """Write the model folder to ``out`` and return it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    specials = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {tok: i for i, tok in enumerate([*specials, *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=context,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    eos = vocab["<|endoftext|>"]
    config = GPT2Config(
        vocab_size=len(vocab),
        n_positions=context,
        n_embd=width,
        n_layer=layers,
        n_head=2,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--width", type=int, default=32)
    args = parser.parse_args()
    print(build_tiny_lm(args.out, args.layers, args.width))
