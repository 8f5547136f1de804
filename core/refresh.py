"""Which similar-item lists a batch of changes can alter (design.md §4).

A list is ranked from a pool of dense candidates (core/similarity). When product P changes or is
deleted, besides P's own list: the lists whose pool held P (``rev:{P}``) may lose it, reorder, or let
the next candidate in; and the lists whose pool P may now enter. The second set is found with one KNN
from P, bounded by ``fanout``: a product Q is affected when P's dense score reaches Q's admission
threshold (``kth`` on Q's hash: the last score of Q's full pool, -1 while it is not full).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from simstream.core.similarity import NeighborSource, SimilarityPolicy
from simstream.core.vector_store import KnnFilter, Neighbor

WEAK_FETCH_FACTOR = 4
WEAK_FETCH_CAP = 3200  # bounds one changed product's reverse search (the design's bounded fan-out)


class RefreshLists(Protocol):
    def rev_many(self, ids: Sequence[str]) -> dict[str, set[str]]: ...


class RefreshStore(NeighborSource, Protocol):
    def admission_thresholds(self, ids: Sequence[str]) -> dict[str, float]: ...


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
        thresholds = store.admission_thresholds(sorted(candidates))
        for found in found_all:
            for neighbour in found:
                if neighbour.product_id in candidates and admits(
                    thresholds.get(neighbour.product_id), neighbour.score, policy
                ):
                    affected.add(neighbour.product_id)
    return affected - set(deleted)
