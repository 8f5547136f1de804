"""The list protocol's rules on the in-memory implementation, and the pure pool maintenance."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pytest
from support.list_protocol_cases import (
    CASES,
    MEMBER_VERSION,
    a_member_written_since_it_was_scored_goes_back,
    a_pool_naming_a_deleted_product_goes_back,
)

from simstream.core.list_store import Lists, MemoryListStore, PoolProposal, decode_list
from simstream.core.pools import (
    COMPLETE,
    Pool,
    Score,
    apply_changes,
    pool_entry,
    pool_from_ranked,
    ranked_items,
)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_ordering_rules(case: Callable[[Lists], None]) -> None:
    case(MemoryListStore(lambda _pid: MEMBER_VERSION))


def test_a_pool_naming_a_deleted_product_goes_back() -> None:
    deleted: set[str] = set()
    lists = MemoryListStore(lambda pid: None if pid in deleted else MEMBER_VERSION)
    a_pool_naming_a_deleted_product_goes_back(lists, deleted.add)


def test_a_member_written_since_it_was_scored_goes_back() -> None:
    versions: dict[str, int] = {}
    lists = MemoryListStore(lambda pid: versions.get(pid, MEMBER_VERSION))
    a_member_written_since_it_was_scored_goes_back(lists, versions.__setitem__)


def test_the_clock_passes_a_lost_past() -> None:
    """After Redis lost writes the list's own counters are older; the server's time still outranks them."""
    now = [10_000]
    lists = MemoryListStore(micros=lambda: now[0])
    first = lists.write_lists({"p": ([], 1, "m")})["p"].list_version
    assert first == 10_000
    assert lists.write_lists({"p": ([], 1, "m")})["p"].list_version == 10_001  # clock not moving: +1
    now[0] = 20_000
    assert lists.write_lists({"q": ([], 1, "m")})["q"].list_version == 20_000


def _exact_pool(scores: dict[str, float], owner_excluded: str, size: int, source: int = 1) -> Pool:
    hits = [pool_entry(pid, s, s) for pid, s in scores.items() if pid != owner_excluded]
    return pool_from_ranked(hits, asked=size, source_version=source)


def test_incremental_pools_match_a_search_after_random_changes() -> None:
    """A pool updated change by change holds the exact dense top of the catalog, as a fresh search would,
    whenever apply_changes does not ask for a search; and the list ranked from it is the same."""
    rng = np.random.default_rng(7)
    ids = [f"p{i}" for i in range(60)]
    vectors = {pid: rng.normal(size=8) for pid in ids}

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v)

    owner = "p0"
    pool_size, cap = 10, 14

    def scores() -> dict[str, float]:
        return {pid: float(unit(vectors[owner]) @ unit(v)) for pid, v in vectors.items() if pid != owner}

    pool = _exact_pool(scores(), owner, cap)
    searches = 0
    random.seed(3)
    for _ in range(400):
        pid = random.choice(ids[1:])
        if pid in vectors and random.random() < 0.1:
            del vectors[pid]
            change: dict[str, Score | None] = {pid: None}
        else:
            vectors[pid] = rng.normal(size=8)
            dense = float(unit(vectors[owner]) @ unit(vectors[pid]))
            change = {pid: Score(dense, dense)}
        updated = apply_changes(pool, change, pool_size=pool_size, cap=cap)
        if updated is None:
            searches += 1
            updated = _exact_pool(scores(), owner, cap)
        pool = updated
        exact = _exact_pool(scores(), owner, len(pool.entries))
        assert pool.members()[:pool_size] == exact.members()[:pool_size]
        assert ranked_items(pool, pool_size=pool_size, top_k=5) == ranked_items(exact, pool_size=pool_size, top_k=5)
    assert 0 < searches < 200  # the slack saves most searches, and the refill path runs


def test_a_complete_pool_admits_anything_and_never_asks_for_a_search() -> None:
    pool = Pool((("a", 0.5, 0.5),), COMPLETE, 1)
    grown = apply_changes(pool, {"b": Score(-0.9, -0.9)}, pool_size=3, cap=4)
    assert grown is not None and grown.members() == ("a", "b")
    shrunk = apply_changes(grown, {"a": None, "b": None}, pool_size=3, cap=4)
    assert shrunk is not None and shrunk.members() == ()


def test_trimming_past_the_cap_raises_the_bound_to_the_best_left_out() -> None:
    pool = Pool(tuple((p, s, s) for p, s in [("a", 0.9), ("b", 0.8)]), COMPLETE, 1)
    trimmed = apply_changes(pool, {"c": Score(0.7, 0.7)}, pool_size=1, cap=2)
    assert trimmed is not None and trimmed.members() == ("a", "b") and trimmed.bound == pytest.approx(0.7)
    assert not trimmed.admits(0.7) and trimmed.admits(0.71)


def test_a_prepared_list_is_what_its_payload_decodes_to() -> None:
    """PREPARE builds the StoredList to emit without parsing the payload it wrote: they must agree."""
    lists = MemoryListStore(lambda _pid: 1)
    state = lists.read_states(["p"])["p"]
    pool = Pool((("a", 0.9, 0.91234567), ("b", 0.8, 0.8)), COMPLETE, 1)
    items = ranked_items(pool, pool_size=2, top_k=2)
    prepared = lists.prepare({"p": PoolProposal(state, pool, items, 1, "m", member_versions={"a": 1, "b": 1})})
    ready = prepared.ready["p"]
    assert ready == decode_list(ready.payload)
    assert ready.items[0].score == 0.912346


def test_equal_hybrid_scores_rank_by_product_id_whatever_their_dense_order() -> None:
    pool = Pool((("c", 0.9, 0.5), ("a", 0.8, 0.7), ("b", 0.7, 0.5), ("d", 0.6, 0.1)), COMPLETE, 1)
    assert [n.product_id for n in ranked_items(pool, pool_size=4, top_k=3)] == ["a", "b", "c"]
    assert [n.product_id for n in ranked_items(pool, pool_size=3, top_k=3)] == ["a", "b", "c"]
    assert ranked_items(pool, pool_size=4, top_k=4)[-1] == ("d", 0.1)
