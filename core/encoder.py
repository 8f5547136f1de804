"""Texts to unit vectors: tokenize -> forward -> mean-pool -> L2-normalise -> float32 (n, dim).

Numerically the same as sentence-transformers for mean-pooling models (cosine > 0.9999 per row), but
faster: texts are tokenized once, sorted by token length and cut into chunks bounded by items and padded
tokens, each chunk padded only to its own longest text; the original order is restored at the end.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
import torch

from simstream.core.batcher import length_sorted_order
from simstream.core.errors import ModelLoadError
from simstream.core.model_source import ModelSource, ensure_offline, locate_model
from simstream.core.quantized import quantize, read_quantization, require_cpu

if TYPE_CHECKING:
    from simstream.schemas.settings import Settings


# Padded tokens per CPU forward pass: at 8192 the attention scores of long texts (items x heads x len^2)
# spill out of cache; 2048 measured about 10-20% faster per item on all-MiniLM-L6-v2 (2-core CPU).
CPU_CHUNK_TOKENS = 2048


class Encoder(Protocol):
    """What the pipeline needs from an embedding model; CPU/GPU encoders and test fakes implement it."""

    @property
    def model_id(self) -> str: ...  # "<model name>@<revision>", stored beside every vector

    @property
    def dim(self) -> int: ...

    # Safe to call while encode() runs on another thread: the worker counts the tokens of the records it
    # polls while the next batch is encoded ahead (consumers/prefetch.py).
    def token_counts(self, texts: Sequence[str]) -> list[int]: ...

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, not the host's count, in containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pick_device(requested: str) -> str:
    """``auto`` means CUDA when a GPU is visible, else CPU; an explicit device is taken as given."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {requested!r} requested but torch sees no CUDA device")
    return requested


def model_device(source: ModelSource, requested: str) -> str:
    """:func:`pick_device`, except that ``auto`` runs a dynamic int8 copy (core/quantized) on the CPU,
    its only device, even beside a GPU: a GPU worker can then still write a shadow generation of it."""
    if requested == "auto" and read_quantization(source.path) is not None:
        return "cpu"
    return pick_device(requested)


def plan_chunks(sorted_lengths: Sequence[int], max_items: int, max_tokens: int) -> list[range]:
    """Cut length-sorted items into consecutive chunks of at most ``max_items`` items and at most
    ``max_tokens`` padded tokens (items x longest item); an item over the token budget goes alone."""
    chunks: list[range] = []
    start, longest = 0, 0
    for index, length in enumerate(sorted_lengths):
        count = index - start
        widest = max(longest, length)
        if count and (count >= max_items or (count + 1) * widest > max_tokens):
            chunks.append(range(start, index))
            start, widest = index, length
        longest = widest
    if start < len(sorted_lengths):
        chunks.append(range(start, len(sorted_lengths)))
    return chunks


class TransformerEncoder:
    """A Hugging Face encoder model with mean pooling; implements :class:`Encoder`.

    On CPU it sets torch's (process-wide) thread count; on CUDA it runs under bf16 autocast.
    """

    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        device: str = "auto",
        max_seq_length: int = 256,
        max_batch_tokens: int = 8192,
        max_batch_items: int = 64,
        threads: int | None = None,
    ) -> None:
        if max_batch_items < 1 or max_batch_tokens < 1 or max_seq_length < 2:
            raise ValueError("max_batch_items, max_batch_tokens and max_seq_length must be positive")
        ensure_offline()
        self._source: ModelSource = locate_model(model, revision)
        # A dynamic int8 copy runs on the CPU only: "auto" picks the CPU for it even beside a GPU, so a
        # GPU worker can still write a shadow generation of it (an explicit cuda is refused at load).
        self.device: str = model_device(self._source, device)
        if self.device == "cpu":
            torch.set_num_threads(threads or usable_cores())
        _require_mean_pooling(self._source.path)
        self._tokenizer, self._model = _load(self._source.path, self.device)
        # A fast tokenizer is not safe to share between threads: token_counts has its own copy, so that
        # counting never waits for an encode running on another thread.
        self._counting_tokenizer = copy.deepcopy(self._tokenizer)
        self._counting_lock = threading.Lock()
        self._dim = int(self._model.config.hidden_size)
        self._max_seq_length = _effective_max_length(max_seq_length, self._model, self._tokenizer)
        self._pad_id = int(self._tokenizer.pad_token_id or 0)
        self._pad_left = getattr(self._tokenizer, "padding_side", "right") == "left"
        self._max_batch_tokens = max_batch_tokens
        self._max_batch_items = max_batch_items
        self.items_encoded: int = 0  # lets tests prove that a price-only update skipped the encoder

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformerEncoder:
        device = model_device(locate_model(settings.model, settings.model_revision), settings.device)
        chunk_tokens = settings.encoder_chunk_tokens or (
            settings.batch_max_tokens if device.startswith("cuda") else min(CPU_CHUNK_TOKENS, settings.batch_max_tokens)
        )
        return cls(
            settings.model,
            revision=settings.model_revision,
            device=device,
            max_seq_length=settings.max_seq_length,
            max_batch_tokens=chunk_tokens,
            max_batch_items=settings.batch_max_items,
            threads=settings.encoder_threads,
        )

    @property
    def model_id(self) -> str:
        return self._source.model_id

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def model_path(self) -> Path:
        return self._source.path

    @property
    def max_seq_length(self) -> int:
        return self._max_seq_length

    @property
    def max_batch_tokens(self) -> int:
        return self._max_batch_tokens

    @property
    def max_batch_items(self) -> int:
        return self._max_batch_items

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text is encoded with: after truncation, special tokens included."""
        with self._counting_lock:
            return [len(ids) for ids in self._token_ids(texts, self._counting_tokenizer)]

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """L2-normalised float32 vectors, one row per text, in input order."""
        vectors = np.empty((len(texts), self._dim), dtype=np.float32)
        if not texts:
            return vectors
        token_ids = self._token_ids(texts, self._tokenizer)
        order = length_sorted_order([len(ids) for ids in token_ids])
        chunks = plan_chunks([len(token_ids[index]) for index in order], self._max_batch_items, self._max_batch_tokens)
        with torch.inference_mode(), self._precision():
            for chunk in chunks:
                members = order[chunk.start : chunk.stop]
                vectors[members] = self._forward([token_ids[index] for index in members])
        self.items_encoded += len(texts)
        return vectors

    def _token_ids(self, texts: Sequence[str], tokenizer: Any) -> list[list[int]]:
        if not texts:
            return []
        encoded = tokenizer(
            list(texts),
            truncation=True,
            max_length=self._max_seq_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        ids: list[list[int]] = encoded["input_ids"]
        return ids

    def _precision(self) -> AbstractContextManager[Any]:
        if self.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _forward(self, token_ids: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        # Dynamic padding: the chunk is padded to its own longest text only.
        width = max(len(ids) for ids in token_ids)
        input_ids = np.full((len(token_ids), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(token_ids), width), dtype=np.int64)
        for row, ids in enumerate(token_ids):
            span = slice(width - len(ids), width) if self._pad_left else slice(0, len(ids))
            input_ids[row, span] = ids
            mask[row, span] = 1
        ids_tensor = torch.from_numpy(input_ids).to(self.device, non_blocking=True)
        mask_tensor = torch.from_numpy(mask).to(self.device, non_blocking=True)
        hidden = self._model(input_ids=ids_tensor, attention_mask=mask_tensor).last_hidden_state
        # Pool in float32 even under bf16 autocast: sums over 256 tokens lose digits in bf16.
        weights = mask_tensor.unsqueeze(-1).to(torch.float32)
        pooled = (hidden.to(torch.float32) * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        unit = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
        result: npt.NDArray[np.float32] = unit.cpu().numpy()
        return result


def _load(path: Path, device: str) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a worker's log is no terminal: no weight-loading progress bars
    quantization = read_quantization(path)
    if quantization is not None:
        require_cpu(quantization, device)  # before the weights are read: fail fast
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, use_fast=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load a tokenizer and model from {path}: {exc}") from exc
    # float32 weights everywhere: CUDA gets its speed from bf16 autocast, not from lossy weights.
    model = model.to(device=device, dtype=torch.float32).eval()
    if quantization is not None:
        model = quantize(model)
    return tokenizer, model


def _effective_max_length(requested: int, model: Any, tokenizer: Any) -> int:
    limits = [requested, int(getattr(model.config, "max_position_embeddings", requested))]
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and tokenizer_limit < 1_000_000:  # HF uses 1e30 for "unset"
        limits.append(tokenizer_limit)
    return min(limits)


def _require_mean_pooling(path: Path) -> None:
    """Refuse sentence-transformers folders that pool otherwise: their vectors would silently differ."""
    config_file = path / "1_Pooling" / "config.json"
    if not config_file.is_file():
        return
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"unreadable pooling config {config_file}: {exc}") from exc
    if not config.get("pooling_mode_mean_tokens", False):
        raise ModelLoadError(f"{path} pools other than by mean ({config_file}); only mean pooling is supported")
