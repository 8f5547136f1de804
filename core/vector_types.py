"""The values the vector store's modules share: what is written, what is read back, what a query asks.

They live apart from ``vector_store`` (which re-exports them) so that the index, product and query
modules composed there can import them without an import cycle.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from simstream.core.redis_scripts import UPSERT_APPLIED, UPSERT_NEEDS_EMBEDDING, UPSERT_STALE

Vector = npt.NDArray[np.float32]
Algorithm = Literal["HNSW", "FLAT"]

# Lua compares versions as doubles: integers beyond 2**53 would compare wrongly.
MAX_VERSION = 2**53
# TAG values are split on this separator; Abt-Buy categories hold commas, so use a control character.
TAG_SEPARATOR = "\x1f"
# Results of one vector range query at most (RediSearch's own default bound is 1,000,000).
RANGE_RESULTS_CAP = 100_000
# Fields returned by ``metadata`` (what the CLI shows next to a neighbour).
METADATA_FIELDS = ("title", "brand", "category", "price")


@dataclass(frozen=True, slots=True)
class ProductWrite:
    product_id: str
    version: int
    content_hash: str
    model: str
    title: str
    brand: str
    category: str
    price: float | None
    updated_at: float
    embedding: Vector | None  # None => metadata-only update that keeps the stored embedding
    text: str = ""  # the embedded text, kept for the hybrid score's lexical evidence (core/hybrid)


@dataclass(frozen=True, slots=True)
class StoredState:
    version: int
    content_hash: str | None
    exists: bool  # False => deleted (the fence remembers the delete's version)
    model: str | None = None


def holds_content(state: StoredState | None, digest: str) -> bool:
    """The product is stored with the vector of this content hash (text and model): no new encoding."""
    return state is not None and state.exists and state.content_hash == digest


class Neighbor(NamedTuple):
    # A tuple, not a dataclass: every batch builds and reads thousands of lists of them.
    product_id: str
    score: float  # cosine similarity = 1 - COSINE distance


def neighbors(pairs: Iterable[tuple[str, float]]) -> list[Neighbor]:
    """Neighbors from (product id, score) pairs, built in C: a NamedTuple's own constructor is a Python
    call per item, and every batch builds tens of thousands of them."""
    return list(map(_NEIGHBOR, pairs))


_NEIGHBOR: Final = partial(tuple.__new__, Neighbor)


@dataclass(frozen=True, slots=True)
class KnnFilter:
    category: str | None = None
    brand: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    # Only products whose admission threshold (``kth``) lies in [min_kth, max_kth]: the
    # reverse range searches of core/pool_refresh.
    min_kth: float | None = None
    max_kth: float | None = None


class UpsertResult(enum.Enum):
    APPLIED = UPSERT_APPLIED
    STALE = UPSERT_STALE  # older or equal version: nothing changed
    NEEDS_EMBEDDING = UPSERT_NEEDS_EMBEDDING  # metadata-only write, but the stored embedding doesn't match


def vector_blob(vector: Vector, dim: int | None) -> bytes:
    """The FLOAT32 little-endian bytes the index stores and KNN queries send; ``dim`` None: not checked."""
    array = np.asarray(vector, dtype="<f4")
    if array.ndim != 1 or (dim is not None and array.shape[0] != dim):
        raise ValueError(f"expected a vector of shape ({dim},), got {array.shape}")
    return array.tobytes()


def blob_vector(blob: bytes) -> Vector:
    """A stored embedding back as a vector (the inverse of ``vector_blob``)."""
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)
