"""Which similar-item lists a batch of changes can alter (design.md §4).

When product P changes or is deleted, besides P's own list: the lists that held P (``rev:{P}``) may
lose it or reorder, and the lists of products near P may now admit it. The second set is found with
one KNN from P, bounded by ``fanout``: a product Q is affected when P would rank inside Q's current
list (Q's list is shorter than K, or P scores above Q's K-th item).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from simstream.core.list_store import StoredList
from simstream.core.similarity import NeighborSource, SimilarityPolicy
from simstream.core.vector_store import KnnFilter, Neighbor

WEAK_FETCH_FACTOR = 4
WEAK_FETCH_CAP = 3200  # bounds one changed product's reverse search (the design's bounded fan-out)


class RefreshLists(Protocol):
    def read_lists(self, ids: Sequence[str]) -> dict[str, StoredList]: ...
    def rev_many(self, ids: Sequence[str]) -> dict[str, set[str]]: ...


def admits(stored: StoredList | None, score: float, policy: SimilarityPolicy) -> bool:
    """Would a neighbour with ``score`` belong in this current list?"""
    if policy.min_score is not None and score < policy.min_score:
        return False
    if stored is None or len(stored.items) < policy.top_k:
        return True
    return score >= stored.items[-1].score


def affected_products(
    store: NeighborSource,
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
        # when Q's own list is weak. Any Q beyond P's fan-out scores at most the fan-out's last score,
        # so a second KNN among only the products whose threshold is that low finds those.
        full = [(pid, vector) for pid, vector in queries if len(near[pid]) == fanout]
        floor_filters = {
            pid: KnnFilter(category=(filters or {}).get(pid, KnnFilter()).category, max_kth=near[pid][-1].score)
            for pid, _ in full
        }
        # Products of the fan-out with a low threshold also match the filter: fetch well beyond them,
        # and wider again while an answer comes back full (many weak lists: a catalog still loading).
        weak: dict[str, list[Neighbor]] = {}
        pending, k = full, WEAK_FETCH_FACTOR * fanout
        while pending:
            answer = store.knn_many(pending, k, filters=floor_filters)
            weak.update(answer)
            if k >= WEAK_FETCH_CAP:
                break
            pending = [(pid, vector) for pid, vector in pending if len(answer[pid]) == k]
            k = min(WEAK_FETCH_CAP, k * WEAK_FETCH_FACTOR)
        found_all = [*near.values(), *weak.values()]
        candidates = {n.product_id for found in found_all for n in found} - affected
        current = lists.read_lists(sorted(candidates))
        for found in found_all:
            for neighbour in found:
                if neighbour.product_id in candidates and admits(
                    current.get(neighbour.product_id), neighbour.score, policy
                ):
                    affected.add(neighbour.product_id)
    return affected - set(deleted)
