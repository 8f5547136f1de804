"""A tiny random BERT model folder written in a test (no download): the encoder's and the int8 copy's
unit tests load it like a real model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizer

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def write_tiny_bert(
    folder: Path, words: Sequence[str], *, hidden: int, seed: int, max_positions: int, mean_pooling: bool = False
) -> Path:
    """A 2-layer BERT ``hidden`` wide with random weights (``seed``) and a WordPiece vocab of ``words``;
    ``mean_pooling`` also declares mean pooling as a sentence-transformers folder does."""
    vocab = [*SPECIAL_TOKENS, *words]
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(str(vocab_file), do_lower_case=True).save_pretrained(str(folder))  # positional: v4 and v5
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=max_positions,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(str(folder))
    if mean_pooling:
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return folder
