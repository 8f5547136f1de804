"""``simstream bench encoder``: our encoder against the naive way and sentence-transformers.

All three embed the same real product texts (Abt-Buy, built with the production text template) in the
same process with the same torch thread count; each is warmed up once, then timed ``repeats`` times.
Speed is only half the claim, so the report also gives the worst cosine between our vectors and
sentence-transformers' (it must stay > 0.9999: no speed bought with different vectors).
"""

from __future__ import annotations

import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from pydantic import ValidationError

from simstream.core.encoder import TransformerEncoder, usable_cores
from simstream.core.text import build_text
from simstream.producers.catalog import read_catalog
from simstream.schemas.events import Product
from simstream.schemas.settings import Settings

PACKAGED_DATA_DIR = Path(__file__).parent / "data" / "abt-buy"
CATALOG_FILES = ("Abt.csv", "Buy.csv")
WARMUP_ITEMS = 64
ST_BATCH_SIZE = 64
METHODS = ("per_item", "sentence_transformers", "simstream")

Vectors = npt.NDArray[np.float32]


def load_product_texts(template: str, *, data_dir: Path | None = None, limit: int | None = None) -> list[str]:
    """Embedded texts of the Abt-Buy offers, the two shops interleaved so any prefix mixes both styles.

    With ``limit`` above the catalog size the texts repeat, as a busy stream would repeat titles.
    """
    folder = data_dir or PACKAGED_DATA_DIR
    per_shop: list[list[str]] = []
    for file_name in CATALOG_FILES:
        texts = []
        for row in read_catalog(folder / file_name, fmt="csv"):
            try:
                texts.append(build_text(Product(**row.product), template))
            except ValidationError:
                continue  # a row the stream would dead-letter is not part of the workload either
        per_shop.append(texts)
    interleaved = [text for pair in zip(*per_shop, strict=False) for text in pair]
    longest = max(per_shop, key=len)
    interleaved += longest[min(len(shop) for shop in per_shop) :]
    if limit is None:
        return interleaved
    return list(islice(cycle(interleaved), limit))


def run_encoder_bench(
    settings: Settings,
    *,
    n_items: int = 512,
    repeats: int = 3,
    threads: int | None = None,
    texts: Sequence[str] | None = None,
    data_dir: Path | None = None,
    per_item_limit: int = 128,
) -> dict[str, Any]:
    """Time the three ways on the same texts; a JSON-ready dict (see :func:`format_encoder_table`).

    The naive per-item way runs on a seeded random sample of at most ``per_item_limit`` of the texts.
    """
    if repeats < 1 or per_item_limit < 1:
        raise ValueError("repeats and per_item_limit must be at least 1")
    workload = (
        list(texts)
        if texts is not None
        else load_product_texts(settings.text_template, data_dir=data_dir, limit=n_items)
    )
    if not workload:
        raise ValueError("no texts to benchmark")
    thread_count = threads or settings.encoder_threads or usable_cores()
    encoder = TransformerEncoder.from_settings(settings.model_copy(update={"encoder_threads": thread_count}))
    torch.set_num_threads(thread_count)  # the same count for the peers too (the encoder sets it on CPU only)
    # One forward per item costs the same per item at any n, so a sample keeps the run short; a seeded
    # random one keeps the mix of short titles and long descriptions (a stride would pick one shop).
    sample = workload if len(workload) <= per_item_limit else random.Random(0).sample(workload, per_item_limit)
    workloads = {"per_item": sample, "sentence_transformers": workload, "simstream": workload}

    def per_item(batch: Sequence[str]) -> Vectors:
        return np.concatenate([encoder.encode([text]) for text in batch])

    available = {
        "per_item": per_item,
        "sentence_transformers": _sentence_transformers(encoder),
        "simstream": encoder.encode,
    }
    methods = {name: method for name, method in available.items() if method is not None}
    seconds, vectors = _time_interleaved(methods, workloads, repeats)
    result: dict[str, Any] = {
        name: {"missing": "sentence-transformers is not installed (pip install simstream[bench])"}
        for name, method in available.items()
        if method is None
    }
    for name in methods:
        result[name] = _rates(seconds[name], len(workloads[name]), sum(encoder.token_counts(workloads[name])))
    ours = result["simstream"]["items_per_s"]
    result["ratios"] = {
        "simstream_vs_sentence_transformers": _ratio(ours, result["sentence_transformers"]),
        "simstream_vs_per_item": _ratio(ours, result["per_item"]),
    }
    if "sentence_transformers" in vectors:
        cosines = np.sum(vectors["simstream"] * vectors["sentence_transformers"], axis=1)
        result["min_cosine_vs_sentence_transformers"] = float(cosines.min())
    result["config"] = {
        "model": encoder.model_id,
        "device": encoder.device,
        "dtype": "bfloat16 autocast" if encoder.device.startswith("cuda") else "float32",
        "threads": torch.get_num_threads(),
        "usable_cores": usable_cores(),
        "n_items": len(workload),
        "per_item_n_items": len(workloads["per_item"]),
        "mean_tokens_per_item": round(result["simstream"]["tokens"] / len(workload), 1),
        "repeats": repeats,
        "max_batch_items": encoder.max_batch_items,
        "max_batch_tokens": encoder.max_batch_tokens,
        "st_batch_size": ST_BATCH_SIZE,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    return result


def format_encoder_table(result: dict[str, Any]) -> str:
    """A plain-text table of :func:`run_encoder_bench`'s result."""
    lines = [f"{'method':<22} {'items/s':>9} {'tokens/s':>10} {'best s':>8} {'median s':>9} {'items':>6}"]
    for name in METHODS:
        row = result[name]
        if "missing" in row:
            lines.append(f"{name:<22} {'-':>9} {'-':>10} {'-':>8} {'-':>9}  ({row['missing']})")
            continue
        lines.append(
            f"{name:<22} {row['items_per_s']:>9.1f} {row['tokens_per_s']:>10.0f} "
            f"{row['best_s']:>8.3f} {row['median_s']:>9.3f} {row['n_items']:>6}"
        )
    ratios = result["ratios"]
    lines.append(
        "simstream / sentence-transformers: "
        + _format_ratio(ratios["simstream_vs_sentence_transformers"])
        + "   simstream / per-item: "
        + _format_ratio(ratios["simstream_vs_per_item"])
    )
    if "min_cosine_vs_sentence_transformers" in result:
        lines.append(f"min cosine vs sentence-transformers: {result['min_cosine_vs_sentence_transformers']:.6f}")
    config = result["config"]
    lines.append(
        f"{config['model']} on {config['device']} ({config['dtype']}), {config['threads']} threads of "
        f"{config['usable_cores']} cores, {config['n_items']} items x {config['mean_tokens_per_item']} tokens, "
        f"best of {config['repeats']}, torch {config['torch']}"
    )
    return "\n".join(lines)


def _sentence_transformers(encoder: TransformerEncoder) -> Callable[[Sequence[str]], Vectors] | None:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    model = SentenceTransformer(str(encoder.model_path), device=encoder.device, local_files_only=True)
    model.max_seq_length = encoder.max_seq_length

    def encode(batch: Sequence[str]) -> Vectors:
        vectors = model.encode(list(batch), batch_size=ST_BATCH_SIZE, convert_to_numpy=True, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)

    return encode


def _time_interleaved(
    methods: dict[str, Callable[[Sequence[str]], Vectors]], workloads: dict[str, list[str]], repeats: int
) -> tuple[dict[str, list[float]], dict[str, Vectors]]:
    """Rounds of one timed run per method, so that a noisy spell of the machine hits all alike."""
    for name, method in methods.items():
        method(workloads[name][:WARMUP_ITEMS])  # lazy init, allocator growth, kernel selection
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    vectors: dict[str, Vectors] = {}
    for _ in range(repeats):
        for name, method in methods.items():
            start = time.perf_counter()
            vectors[name] = method(workloads[name])
            seconds[name].append(time.perf_counter() - start)
    return seconds, vectors


def _rates(seconds: list[float], items: int, tokens: int) -> dict[str, Any]:
    best = min(seconds)
    return {
        "n_items": items,
        "tokens": tokens,
        "items_per_s": items / best,
        "tokens_per_s": tokens / best,
        "best_s": best,
        "median_s": statistics.median(seconds),
        "median_items_per_s": items / statistics.median(seconds),  # steadier than best on a busy machine
        "runs_s": seconds,
    }


def _ratio(ours: float, peer: dict[str, Any]) -> float | None:
    return ours / peer["items_per_s"] if "items_per_s" in peer else None


def _format_ratio(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"
