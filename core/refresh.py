"""Which similar-item lists a batch of changes can alter (design.md §4).

A list is ranked from a pool of dense candidates (core/similarity). When product P changes or is
deleted, besides P's own list: the lists whose pool held P (``rev:{P}``) may lose it, reorder, or let
the next candidate in; and the lists whose pool P may now enter. The second set is found with one KNN
from P, bounded by ``fanout``: a product Q is affected when P's dense score reaches Q's admission
threshold (``kth`` on Q's hash: the last score of Q's full pool, -1 while it is not full).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Protocol

from simstream.core.similarity import NeighborSource, SimilarityPolicy
from simstream.core.vector_store import KnnFilter, Neighbor, RangeQuery

# Threshold bands of the reverse search: narrower bands return fewer false candidates, more bands cost
# more queries; pools whose threshold is -1 (not full) admit anything and have a band of their own.
MAX_BANDS = 8
MIN_BAND_WIDTH = 0.05
NOT_FULL = (-1.0, -1.0)


def admission_bands(lowest: float | None, highest: float) -> list[tuple[float, float]]:
    """[low, high] threshold bands covering [lowest, highest]; none when no threshold is that low."""
    if lowest is None or lowest > highest:
        return []
    count = max(1, min(MAX_BANDS, math.ceil((highest - lowest) / MIN_BAND_WIDTH)))
    width = (highest - lowest) / count
    return [(lowest + i * width, highest if i == count - 1 else lowest + (i + 1) * width) for i in range(count)]


class RefreshLists(Protocol):
    def rev_many(self, ids: Sequence[str]) -> dict[str, set[str]]: ...


class RefreshStore(NeighborSource, Protocol):
    def admission_thresholds(self, ids: Sequence[str]) -> dict[str, float]: ...
    def range_many(self, queries: Sequence[RangeQuery]) -> list[list[Neighbor]]: ...
    def lowest_admission(self) -> float | None: ...


def admits(threshold: float | None, dense: float, policy: SimilarityPolicy) -> bool:
    """Would a neighbour with this dense score enter a pool with this admission threshold (None: the
    product has no list yet), and could it then pass the policy's minimum score?"""
    if not policy.may_score(dense):
        return False
    return threshold is None or dense >= threshold


def affected_products(
    store: RefreshStore,
    lists: RefreshLists,
    changed: Collection[str],
    deleted: Collection[str],
    policy: SimilarityPolicy,
    *,
    fanout: int,
) -> set[str]:
    """Every product whose list must be recomputed after ``changed`` and ``deleted`` took effect."""
    affected = set(changed)
    for holders in lists.rev_many([*changed, *deleted]).values():
        affected |= holders
    if changed and fanout > 0:
        vectors = store.embeddings(list(changed))
        present = [pid for pid in changed if pid in vectors]
        filters: dict[str, KnnFilter] | None = None
        if policy.same_category_only:
            metadata = store.metadata(present)
            filters = {pid: KnnFilter(category=metadata.get(pid, {}).get("category")) for pid in present}
        queries = [(pid, vectors[pid]) for pid in present]
        near = store.knn_many(queries, fanout, filters=filters)
        # Similarity is symmetric, nearness is not: a loner Q far down P's ranking can still admit P
        # when Q's own pool is weak. Q beyond P's fan-out scores at most the fan-out's last score, and
        # admits P only when P scores at least Q's threshold: vector range searches, one per band of
        # thresholds, return every Q whose threshold lies in the band and whose score reaches the band's
        # low end (a superset, checked exactly below).
        full = [(pid, vector) for pid, vector in queries if len(near[pid]) == fanout]
        lowest = store.lowest_admission() if full else None
        searches: list[RangeQuery] = []
        for pid, vector in full:
            category = (filters or {}).get(pid, KnnFilter()).category
            for low, high in [NOT_FULL, *admission_bands(lowest, near[pid][-1].score)]:
                searches.append(RangeQuery(pid, vector, low, KnnFilter(category=category, min_kth=low, max_kth=high)))
        weak: dict[str, list[Neighbor]] = {}
        for search, found in zip(searches, store.range_many(searches), strict=True):
            weak.setdefault(search.product_id, []).extend(found)
        found_all = [*near.values(), *weak.values()]
        candidates = {n.product_id for found in found_all for n in found} - affected
        thresholds = store.admission_thresholds(sorted(candidates))
        for found in found_all:
            for neighbour in found:
                if neighbour.product_id in candidates and admits(
                    thresholds.get(neighbour.product_id), neighbour.score, policy
                ):
                    affected.add(neighbour.product_id)
    return affected - set(deleted)
