"""Top-K similar products of a product, as the policy allows (design.md §4).

``compute_lists`` asks the vector store (KNN on each product's stored vector), for tools; the pipeline
keeps lists through pools (core/pool_refresh, core/bulk_lists); ``exact_lists`` is the brute-force
reference over given vectors, for tests and quality checks; ``lists_equal`` tells whether a recomputed
list differs enough from the emitted one to be emitted again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from simstream.core.hybrid import HybridWeights, rank_pool
from simstream.core.terms import TermStats, scoring_id
from simstream.core.vector_store import KnnFilter, Neighbor, Vector
from simstream.schemas.settings import Settings

# Queries per pipeline: bounds one round trip's size when a whole catalog is recomputed.
KNN_BATCH_SIZE = 256


class NeighborSource(Protocol):
    """What compute_lists needs of a vector store (RedisVectorStore is one)."""

    def embeddings(self, ids: Sequence[str]) -> dict[str, Vector]: ...
    def metadata(self, ids: Sequence[str]) -> dict[str, dict[str, str]]: ...
    def texts(self, ids: Sequence[str]) -> dict[str, str]: ...
    def knn_many(
        self,
        queries: Sequence[tuple[str, Vector]],
        k: int,
        *,
        flt: KnnFilter | None = None,
        filters: Mapping[str, KnnFilter] | None = None,
    ) -> dict[str, list[Neighbor]]: ...


DENSE_ONLY = HybridWeights(code=0.0, lexical=0.0)


@dataclass(frozen=True, slots=True)
class SimilarityPolicy:
    """What a list is: the top-K by hybrid score (core/hybrid) of the dense top-``pool_size``
    candidates that the filters allow; with DENSE_ONLY weights, the top-K by cosine."""

    top_k: int
    same_category_only: bool = False
    min_score: float | None = None  # neighbours scoring below are dropped (the list may get shorter)
    weights: HybridWeights = DENSE_ONLY
    candidates: int = 0  # dense candidates re-ranked by the hybrid score (at least top_k are)
    slack: int = 0  # pool members kept beyond pool_size, so most changes need no search (core/pools)
    terms: TermStats | None = None  # the IDF snapshot of the lexical score (core/terms); None: uniform

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.slack < 0:
            raise ValueError(f"slack must not be negative, got {self.slack}")

    @classmethod
    def from_settings(cls, settings: Settings) -> SimilarityPolicy:
        return cls(
            top_k=settings.top_k,
            same_category_only=settings.same_category_only,
            min_score=settings.min_score,
            weights=HybridWeights.from_settings(settings),
            candidates=settings.rerank_candidates,
            slack=settings.pool_slack,
        )

    @property
    def pool_size(self) -> int:
        return self.top_k if self.weights.is_dense_only else max(self.top_k, self.candidates)

    @property
    def pool_cap(self) -> int:
        """The most members a pool keeps: pool_size plus the slack."""
        return self.pool_size + self.slack

    def scoring_id(self, model_id: str) -> str:
        """The ``model`` value of the lists this policy scores: the encoder and the snapshot."""
        return scoring_id(model_id, self.terms)

    def keep(self, neighbors: Iterable[Neighbor]) -> list[Neighbor]:
        if self.min_score is None:
            return list(neighbors)
        return [n for n in neighbors if n.score >= self.min_score]


def compute_lists(
    store: NeighborSource,
    product_ids: Sequence[str],
    policy: SimilarityPolicy,
    *,
    batch_size: int = KNN_BATCH_SIZE,
) -> dict[str, list[Neighbor]]:
    """Each id's list (self excluded, best first) from its stored vector, as the policy defines it.

    Ids without a stored product are left out. With ``same_category_only`` a product without a category
    is not restricted (an empty TAG value cannot be queried).
    """
    lists: dict[str, list[Neighbor]] = {}
    for chunk in _chunks(product_ids, batch_size):
        lists.update({pid: found[0] for pid, found in _ranked_lists(store, store.embeddings(chunk), policy).items()})
    return lists


def _chunks(product_ids: Sequence[str], batch_size: int) -> list[list[str]]:
    unique_ids = list(dict.fromkeys(product_ids))
    return [unique_ids[start : start + batch_size] for start in range(0, len(unique_ids), batch_size)]


def _ranked_lists(
    store: NeighborSource, vectors: Mapping[str, Vector], policy: SimilarityPolicy
) -> dict[str, tuple[list[Neighbor], list[Neighbor]]]:
    """(list, dense pool) of each product: its dense top-pool_size, ranked by the policy's scoring."""
    present = list(vectors)
    filters: dict[str, KnnFilter] | None = None
    if policy.same_category_only:
        metadata = store.metadata(present)
        filters = {pid: KnnFilter(category=metadata.get(pid, {}).get("category")) for pid in present}
    pools = store.knn_many([(pid, vectors[pid]) for pid in present], policy.pool_size, filters=filters)
    texts: dict[str, str] = {}
    if not policy.weights.is_dense_only:
        texts = store.texts(sorted({*present, *(n.product_id for pool in pools.values() for n in pool)}))
    return {
        pid: (
            policy.keep(rank_pool(texts.get(pid, ""), pools[pid], texts, policy.weights, policy.top_k, policy.terms)),
            pools[pid],
        )
        for pid in present
    }


def exact_lists(
    vectors: Mapping[str, Vector],
    policy: SimilarityPolicy,
    categories: Mapping[str, str] | None = None,
    texts: Mapping[str, str] | None = None,
) -> dict[str, list[Neighbor]]:
    """Brute-force lists over ``vectors``: the reference the store should match. The exact dense
    top-pool_size of each product, ranked by the policy's scoring (``texts`` needed when it is hybrid).

    Ties are broken by product id so the reference is deterministic. ``categories`` is needed when the
    policy keeps to the same category (compared case-insensitively, like the TAG index).
    """
    ids = list(vectors)
    if not ids:
        return {}
    matrix = np.stack([np.asarray(vectors[pid], dtype=np.float64) for pid in ids])
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.where(norms == 0.0, 1.0, norms)
    scores = unit @ unit.T
    folded = {pid: (categories or {}).get(pid, "").strip().lower() for pid in ids}
    lists: dict[str, list[Neighbor]] = {}
    for row, pid in enumerate(ids):
        candidates = [
            (float(scores[row, col]), other)
            for col, other in enumerate(ids)
            if other != pid and (not policy.same_category_only or not folded[pid] or folded[other] == folded[pid])
        ]
        candidates.sort(key=lambda pair: (-pair[0], pair[1]))
        pool = [Neighbor(other, score) for score, other in candidates[: policy.pool_size]]
        found = rank_pool((texts or {}).get(pid, ""), pool, texts or {}, policy.weights, policy.top_k, policy.terms)
        lists[pid] = policy.keep(found)
    return lists


def lists_equal(old: Sequence[Neighbor], new: Sequence[Neighbor], epsilon: float = 1e-4) -> bool:
    """Same members in the same order, and no score moved by more than ``epsilon``."""
    if len(old) != len(new):
        return False
    return all(
        a.product_id == b.product_id and abs(a.score - b.score) <= epsilon for a, b in zip(old, new, strict=True)
    )
