"""Exact dense scores as matrix products: numpy on the CPU, torch on a GPU when there is one.

The list work scores many pairs at once: a batch's changed vectors against the vectors of the lists
they touch (core/pool_refresh), and a whole catalog against itself in blocks for a first load
(core/bulk_lists). Vectors are unit-normalised here, so a score is the cosine Redis's COSINE metric
gives (as 1 - distance), up to float32 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]

# Rows of the catalog scored at once by block_top_k: a block costs block_rows * catalog * 4 bytes
# (512 x 100,000 x 4 = 200 MB), small enough next to the encoder and large enough for BLAS.
DEFAULT_BLOCK_ROWS = 512


def unit_rows(vectors: npt.ArrayLike) -> Matrix:
    """float32 rows scaled to length 1 (a zero row stays zero)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D matrix of vectors, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: Matrix = (matrix / np.where(norms == 0.0, 1.0, norms)).astype(np.float32, copy=False)
    return unit


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" when a GPU is visible, else "cpu"; "cpu" and "cuda..." are kept."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    return device


def dense_scores(left: npt.ArrayLike, right: npt.ArrayLike, *, device: str = "cpu") -> Matrix:
    """Cosines of every row of ``left`` with every row of ``right``: shape (len(left), len(right))."""
    a, b = unit_rows(left), unit_rows(right)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"vectors of dimension {a.shape[1]} and {b.shape[1]} cannot be compared")
    if device == "cpu" or not len(a) or not len(b):
        scores: Matrix = a @ b.T
        return scores
    import torch

    with torch.no_grad():
        product = torch.from_numpy(a).to(device) @ torch.from_numpy(b).to(device).T
        result: Matrix = product.cpu().numpy()
    return result


@dataclass(frozen=True, slots=True)
class TopK:
    """For each query row, the columns of its ``k`` best scores (best first) and those scores."""

    columns: Rows  # shape (rows, k'), k' = min(k, candidates); -1 where a row has fewer candidates
    scores: Matrix  # same shape; -inf where columns is -1


def block_top_k(
    vectors: npt.ArrayLike,
    k: int,
    *,
    groups: npt.NDArray[np.int64] | None = None,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    device: str = "cpu",
) -> TopK:
    """Each row's exact top-``k`` other rows by cosine, computed block by block (self excluded).

    ``groups`` (one code per row, optional) keeps each row to the rows of its own group (a category); a
    row whose code is negative may pair with any row. The chosen columns are ordered by score, then by
    column; rows with fewer candidates than ``k`` get -1 columns (and -inf scores) at the end.
    """
    unit = unit_rows(vectors)
    count = len(unit)
    width = max(0, min(k, count - 1))
    columns = np.full((count, width), -1, dtype=np.int64)
    scores = np.full((count, width), -np.inf, dtype=np.float32)
    if width == 0:
        return TopK(columns, scores)
    for start in range(0, count, block_rows):
        stop = min(count, start + block_rows)
        block = dense_scores(unit[start:stop], unit, device=device).astype(np.float32, copy=False)
        rows = np.arange(stop - start)
        block[rows, rows + start] = -np.inf  # a product is not its own neighbour
        if groups is not None:
            own = groups[start:stop, None]
            allowed = (own < 0) | (own == groups[None, :])
            block = np.where(allowed, block, -np.inf).astype(np.float32)
        # argpartition finds the k best unordered; a stable sort on (-score, column) orders them.
        part = np.argpartition(-block, width - 1, axis=1)[:, :width]
        picked = np.take_along_axis(block, part, axis=1)
        order = np.lexsort((part, -picked), axis=1)
        best_columns = np.take_along_axis(part, order, axis=1)
        best_scores = np.take_along_axis(picked, order, axis=1)
        best_columns = np.where(np.isfinite(best_scores), best_columns, -1)
        columns[start:stop] = best_columns[:, :width]
        scores[start:stop] = best_scores[:, :width]
    return TopK(columns, scores)
