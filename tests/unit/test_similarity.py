"""Similarity policy, the brute-force reference, list comparison and compute_lists over a fake store."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from simstream.core.hybrid import HybridWeights
from simstream.core.similarity import SimilarityPolicy, compute_lists, exact_lists, lists_equal
from simstream.core.vector_store import KnnFilter, Neighbor, Vector
from simstream.schemas.settings import Settings


def vec(*values: float) -> Vector:
    return np.asarray(values, dtype=np.float32)


class FakeStore:
    """Answers KNN by brute force over a dict and records what it was asked."""

    def __init__(
        self,
        vectors: Mapping[str, Vector],
        categories: Mapping[str, str] | None = None,
        texts: Mapping[str, str] | None = None,
    ) -> None:
        self.vectors = dict(vectors)
        self.categories = dict(categories or {})
        self.stored_texts = dict(texts or {})
        self.knn_calls: list[tuple[list[str], int, dict[str, KnnFilter] | None]] = []

    def embeddings(self, ids: Sequence[str]) -> dict[str, Vector]:
        return {pid: self.vectors[pid] for pid in ids if pid in self.vectors}

    def metadata(self, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        return {pid: {"category": self.categories.get(pid, "")} for pid in ids if pid in self.vectors}

    def texts(self, ids: Sequence[str]) -> dict[str, str]:
        return {pid: self.stored_texts[pid] for pid in ids if pid in self.stored_texts}

    def knn_many(
        self,
        queries: Sequence[tuple[str, Vector]],
        k: int,
        *,
        flt: KnnFilter | None = None,
        filters: Mapping[str, KnnFilter] | None = None,
    ) -> dict[str, list[Neighbor]]:
        self.knn_calls.append(([pid for pid, _ in queries], k, dict(filters) if filters is not None else None))
        found: dict[str, list[Neighbor]] = {}
        for pid, query in queries:
            wanted = (filters or {}).get(pid, flt)
            scored = [
                Neighbor(other, float(np.dot(query, v) / (np.linalg.norm(query) * np.linalg.norm(v))))
                for other, v in self.vectors.items()
                if other != pid
                and (wanted is None or not wanted.category or self.categories.get(other) == wanted.category)
            ]
            found[pid] = sorted(scored, key=lambda n: -n.score)[:k]
        return found


# --- lists_equal -----------------------------------------------------------------------------


def test_lists_equal_accepts_identical_and_tiny_score_moves() -> None:
    old = [Neighbor("a", 0.9), Neighbor("b", 0.8)]
    assert lists_equal(old, list(old))
    assert lists_equal(old, [Neighbor("a", 0.90005), Neighbor("b", 0.79995)], epsilon=1e-4)
    assert lists_equal([], [])


@pytest.mark.parametrize(
    "new",
    [
        [Neighbor("a", 0.9), Neighbor("c", 0.8)],  # a member changed
        [Neighbor("b", 0.8), Neighbor("a", 0.9)],  # same members, other order
        [Neighbor("a", 0.9), Neighbor("b", 0.7)],  # a score moved more than epsilon
        [Neighbor("a", 0.9)],  # shorter
        [Neighbor("a", 0.9), Neighbor("b", 0.8), Neighbor("c", 0.1)],  # longer
    ],
)
def test_lists_equal_rejects_membership_order_and_score_changes(new: list[Neighbor]) -> None:
    assert not lists_equal([Neighbor("a", 0.9), Neighbor("b", 0.8)], new, epsilon=1e-3)


# --- policy ----------------------------------------------------------------------------------


def test_policy_from_settings_and_validation() -> None:
    policy = SimilarityPolicy.from_settings(Settings(top_k=7, same_category_only=True, min_score=0.25))
    assert policy == SimilarityPolicy(
        top_k=7, same_category_only=True, min_score=0.25, weights=HybridWeights(1.0, 1.0), candidates=50, slack=16
    )
    assert policy.pool_size == 50
    assert SimilarityPolicy(top_k=7, candidates=50).pool_size == 7  # dense only: the list is the pool
    with pytest.raises(ValueError, match="top_k"):
        SimilarityPolicy(top_k=0)


def test_policy_keep_drops_scores_below_min_score() -> None:
    neighbors = [Neighbor("a", 0.9), Neighbor("b", 0.5), Neighbor("c", 0.49)]
    assert SimilarityPolicy(top_k=3, min_score=0.5).keep(neighbors) == neighbors[:2]
    assert SimilarityPolicy(top_k=3).keep(neighbors) == neighbors


# --- exact_lists -----------------------------------------------------------------------------


def test_exact_lists_ranks_by_cosine_and_excludes_self() -> None:
    vectors = {"x": vec(1, 0), "near": vec(2, 0.2), "mid": vec(1, 1), "far": vec(-1, 0.1)}
    lists = exact_lists(vectors, SimilarityPolicy(top_k=2))
    assert [n.product_id for n in lists["x"]] == ["near", "mid"]
    assert lists["x"][1].score == pytest.approx(1 / np.sqrt(2))
    assert all(n.product_id != pid for pid, items in lists.items() for n in items)
    assert all(len(items) == 2 for items in lists.values())


def test_exact_lists_breaks_ties_by_id_and_honours_category_and_min_score() -> None:
    vectors = {"q": vec(1, 0), "b": vec(0, 1), "a": vec(0, 2), "c": vec(1, 0.1)}
    assert [n.product_id for n in exact_lists(vectors, SimilarityPolicy(top_k=3))["q"]] == ["c", "a", "b"]
    categories = {"q": "TV, Audio", "b": "tv, audio", "a": "Other", "c": "Other"}
    same = exact_lists(vectors, SimilarityPolicy(top_k=3, same_category_only=True), categories)
    assert [n.product_id for n in same["q"]] == ["b"]
    assert [n.product_id for n in exact_lists(vectors, SimilarityPolicy(top_k=3, min_score=0.5))["q"]] == ["c"]


# --- compute_lists ---------------------------------------------------------------------------


def test_compute_lists_matches_the_reference_and_skips_missing_ids() -> None:
    rng = np.random.default_rng(7)
    vectors = {f"p{i}": rng.normal(size=8).astype(np.float32) for i in range(12)}
    store = FakeStore(vectors)
    policy = SimilarityPolicy(top_k=4)
    lists = compute_lists(store, ["p1", "gone", "p5", "p1"], policy)
    assert set(lists) == {"p1", "p5"}
    reference = exact_lists(vectors, policy)
    for pid, items in lists.items():
        assert [n.product_id for n in items] == [n.product_id for n in reference[pid]]
        assert [n.score for n in items] == pytest.approx([n.score for n in reference[pid]], abs=1e-5)


def test_compute_lists_batches_queries_and_passes_each_products_category() -> None:
    vectors = {f"p{i}": vec(1, i) for i in range(5)}
    categories = {"p0": "A", "p1": "B", "p2": "A", "p3": "B", "p4": "A"}
    store = FakeStore(vectors, categories)
    lists = compute_lists(store, list(vectors), SimilarityPolicy(top_k=3, same_category_only=True), batch_size=2)
    assert [ids for ids, _, _ in store.knn_calls] == [["p0", "p1"], ["p2", "p3"], ["p4"]]
    assert store.knn_calls[0][2] == {"p0": KnnFilter(category="A"), "p1": KnnFilter(category="B")}
    assert {n.product_id for n in lists["p0"]} == {"p2", "p4"}
    assert {n.product_id for n in lists["p3"]} == {"p1"}


def test_compute_lists_applies_min_score() -> None:
    store = FakeStore({"a": vec(1, 0), "b": vec(1, 0.05), "c": vec(0, 1)})
    lists = compute_lists(store, ["a"], SimilarityPolicy(top_k=2, min_score=0.5))
    assert [n.product_id for n in lists["a"]] == ["b"]


# --- hybrid lists: the dense pool re-ranked -------------------------------------------------------

HYBRID = SimilarityPolicy(top_k=2, weights=HybridWeights(code=1.0, lexical=0.25), candidates=3)


def hybrid_catalog() -> tuple[dict[str, Vector], dict[str, str]]:
    # q's dense order: a, b, c, d. c shares q's model code; d does too but is outside the pool of 3.
    vectors = {
        "q": vec(1.0, 0.0, 0.0),
        "a": vec(0.95, 0.31, 0.0),
        "b": vec(0.9, 0.43, 0.0),
        "c": vec(0.8, 0.6, 0.0),
        "d": vec(0.1, 0.99, 0.0),
    }
    texts = {
        "q": "Sony Camera DSC-W800 black",
        "a": "Canon Camera PowerShot A100",
        "b": "Nikon Camera Coolpix L32",
        "c": "Sony DSCW800 digital camera",
        "d": "Sony DSC-W800 case",
    }
    return vectors, texts


def test_hybrid_lists_rank_a_shared_model_code_first_within_the_pool() -> None:
    vectors, texts = hybrid_catalog()
    found = compute_lists(FakeStore(vectors, texts=texts), ["q"], HYBRID)["q"]
    assert found[0].product_id == "c"  # third by cosine, first with its model code
    assert "d" not in {n.product_id for n in found}  # same code, but not among the 3 dense candidates
    assert found[0].score <= 1.0 and found[0].score > found[1].score
    dense = compute_lists(FakeStore(vectors, texts=texts), ["q"], SimilarityPolicy(top_k=2))["q"]
    assert [n.product_id for n in dense] == ["a", "b"]


def test_hybrid_lists_match_the_brute_force_reference() -> None:
    vectors, texts = hybrid_catalog()
    policy = SimilarityPolicy(top_k=3, weights=HybridWeights(code=1.0, lexical=0.25), candidates=4)
    store = FakeStore(vectors, texts=texts)
    expected = exact_lists(vectors, policy, texts=texts)
    for pid, found in compute_lists(store, list(vectors), policy).items():
        assert [n.product_id for n in found] == [n.product_id for n in expected[pid]]
        assert [n.score for n in found] == pytest.approx([n.score for n in expected[pid]], abs=1e-6)


# --- reverse-search bands (core/pool_refresh) ----------------------------------------------------------


def test_admission_bands_cover_the_thresholds_that_can_admit() -> None:
    from simstream.core.pool_refresh import MAX_BANDS, admission_bands

    assert admission_bands(None, 0.6) == []  # no full pool anywhere
    assert admission_bands(0.7, 0.6) == []  # every threshold is above what P can score beyond its fan-out
    bands = admission_bands(0.2, 0.6)
    assert bands[0][0] == 0.2 and bands[-1][1] == 0.6
    assert all(high >= low for low, high in bands)
    assert all(prev[1] == pytest.approx(nxt[0]) for prev, nxt in itertools.pairwise(bands))
    assert len(bands) == MAX_BANDS
    assert admission_bands(0.5, 0.52) == [(0.5, 0.52)]
