"""``simstream bench scoring``: the exact dense scoring of core/scoring.py, on the CPU and on cuda.

Two operations the list work is built on, timed on synthetic unit vectors (dimension 384, a seeded
RNG: their scores do not matter, only their cost, which depends on the shapes alone):
- ``dense_scores``: a batch's changed vectors (64 and 512 rows) against the vectors of the lists
  they affect (4,096 by default); best of a few repeats.
- ``block_top_k``: every product's exact top-66 over the whole catalog, block by block, at the
  2,173 real offers and at ``size`` (100,000 by default); one run each (the large one dominates the
  bench: on a 2-core CPU about 3 minutes).
cuda runs when ``simstream.core.scoring.cuda_available()``, after one warm-up call (cuBLAS start-up).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from simstream.core.scoring import DEFAULT_BLOCK_ROWS, block_top_k, cuda_available, dense_scores

DIM = 384
TOP_K = 66
REAL_OFFERS = 2173
DEFAULT_SIZE = 100_000
DEFAULT_AFFECTED = 4096
BATCHES = (64, 512)
DENSE_REPEATS = 5


def unit_vectors(count: int, dim: int = DIM, seed: int = 0) -> np.ndarray[Any, np.dtype[np.float32]]:
    """``count`` random float32 unit vectors (a seeded RNG: every run scores the same vectors)."""
    matrix = np.random.default_rng(seed).standard_normal((count, dim), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


def _best_seconds(call: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def _bench_device(
    device: str, sizes: Sequence[int], affected: int, batches: Sequence[int], seed: int
) -> dict[str, Any]:
    right = unit_vectors(affected, seed=seed)
    if device != "cpu":  # the first cuda call pays for cuBLAS and the context
        dense_scores(right[:8], right, device=device)
        block_top_k(right[: min(len(right), 256)], TOP_K, device=device)
    dense = []
    for batch in batches:
        left = unit_vectors(batch, seed=seed + batch)
        seconds = _best_seconds(partial(dense_scores, left, right, device=device), DENSE_REPEATS)
        dense.append({
            "batch": batch,
            "affected": affected,
            "seconds": round(seconds, 6),
            "rows_per_s": round(batch / seconds, 1),
            "pairs_per_s": round(batch * affected / seconds),
        })  # fmt: skip
    top = []
    for size in sizes:
        vectors = unit_vectors(size, seed=seed + 1)
        started = time.perf_counter()
        block_top_k(vectors, TOP_K, device=device)
        seconds = time.perf_counter() - started
        top.append({"n": size, "k": TOP_K, "seconds": round(seconds, 3), "rows_per_s": round(size / seconds, 1)})
    return {"dense_scores": dense, "block_top_k": top}


def _gpu_name() -> str | None:
    import torch

    return str(torch.cuda.get_device_name()) if torch.cuda.is_available() else None


def run_scoring_bench(
    *,
    size: int = DEFAULT_SIZE,
    affected: int = DEFAULT_AFFECTED,
    batches: Sequence[int] = BATCHES,
    devices: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """A JSON-ready dict: per device, dense_scores rows and block_top_k rows (see :func:`format_scoring_table`).

    block_top_k runs at the real catalog's size and at ``size`` (only ``size`` when it is smaller).
    ``devices`` default: cpu, and cuda when available.
    """
    if size < 2 or affected < 1 or not batches or min(batches) < 1:
        raise ValueError("size must be at least 2, affected and every batch at least 1")
    sizes = sorted({min(REAL_OFFERS, size), size})
    chosen = list(devices) if devices is not None else ["cpu", *(["cuda"] if cuda_available() else [])]
    return {
        "devices": {device: _bench_device(device, sizes, affected, batches, seed) for device in chosen},
        "config": {
            "dim": DIM,
            "k": TOP_K,
            "sizes": sizes,
            "affected": affected,
            "batches": list(batches),
            "block_rows": DEFAULT_BLOCK_ROWS,
            "dense_repeats": DENSE_REPEATS,
            "cpu_count": os.cpu_count(),
            "gpu": _gpu_name() if "cuda" in chosen else None,
            "vectors": f"synthetic unit vectors, seeded RNG (seed {seed})",
        },
    }


def format_scoring_table(result: dict[str, Any]) -> str:
    config = result["config"]
    lines = [
        f"exact dense scoring, {config['dim']}-d unit vectors; cpu count {config['cpu_count']}"
        + (f", gpu {config['gpu']}" if config["gpu"] else ""),
        f"{'device':6} {'operation':34} {'seconds':>10} {'rows/s':>12}",
    ]
    for device, rows in result["devices"].items():
        for row in rows["dense_scores"]:
            name = f"dense_scores {row['batch']} x {row['affected']}"
            lines.append(f"{device:6} {name:34} {row['seconds']:>10} {row['rows_per_s']:>12}")
        for row in rows["block_top_k"]:
            name = f"block_top_k k={row['k']} N={row['n']}"
            lines.append(f"{device:6} {name:34} {row['seconds']:>10} {row['rows_per_s']:>12}")
    return "\n".join(lines)
