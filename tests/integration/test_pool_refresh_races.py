"""core/pool_refresh against a real Redis when another worker writes the same products meanwhile
(two workers briefly holding a partition during a rebalance): lists stay exact. Hand-made vectors."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import redis
from support.streaming import stream_settings

from simstream.core.bulk_lists import build_all_lists
from simstream.core.list_store import ListStore
from simstream.core.namespace import clear_redis_namespace
from simstream.core.pool_refresh import Owner, PoolRefresher
from simstream.core.redis_client import make_redis_client
from simstream.core.similarity import SimilarityPolicy, exact_lists
from simstream.core.vector_store import ProductWrite, RedisVectorStore, Vector
from simstream.schemas.settings import Settings

pytestmark = pytest.mark.integration

MODEL = "test-model@1"
POLICY = SimilarityPolicy(top_k=2)  # dense only, no slack: a pool holds its 2 best of 4 candidates
CATALOG = {
    "q": [1.0, 0.0, 0.0, 0.0],
    "a": [0.8, 0.6, 0.0, 0.0],
    "b": [0.6, 0.8, 0.0, 0.0],
    "p": [0.0, 0.0, 1.0, 0.0],
    "m": [0.0, 0.0, 0.0, 1.0],
}


@pytest.fixture
def world(redis_url: str, unique_name: str) -> Iterator[tuple[redis.Redis, RedisVectorStore, ListStore]]:
    settings: Settings = stream_settings("127.0.0.1:1", redis_url, unique_name, top_k=POLICY.top_k)
    client = make_redis_client(settings)
    store = RedisVectorStore.from_settings(settings, client)
    store.ensure_index(4, MODEL)
    yield client, store, ListStore.from_settings(settings, client)
    clear_redis_namespace(settings, client)


def write(store: RedisVectorStore, pid: str, version: int, vector: list[float]) -> Owner:
    embedding: Vector = np.asarray(vector, dtype=np.float32)
    written = ProductWrite(pid, version, f"{pid}@{version}", MODEL, pid, "", "", None, 0.0, embedding)
    assert store.upsert([written]) == [True]
    return Owner(embedding, version, "", "")


def listed(lists: ListStore, pid: str) -> list[str]:
    stored = lists.read_list(pid)
    return [] if stored is None else [n.product_id for n in stored.items]


def test_a_product_written_again_by_another_worker_leaves_the_batch_s_other_changes_intact(
    world: tuple[redis.Redis, RedisVectorStore, ListStore],
) -> None:
    client, store, lists = world
    for pid, vector in CATALOG.items():
        write(store, pid, 1, vector)
    assert store.wait_indexed(10)
    build_all_lists(store, lists, POLICY, MODEL)
    assert listed(lists, "q") == ["a", "b"]

    # This worker's batch writes p and m close to q; another worker then writes m again, far away,
    # before this batch's lists are prepared.
    moved = {
        "p": write(store, "p", 2, [0.95, 0.0, float(np.sqrt(1 - 0.95**2)), 0.0]),
        "m": write(store, "m", 2, [0.9, 0.0, 0.0, float(np.sqrt(1 - 0.9**2))]),
    }
    write(store, "m", 3, [0.0, 0.0, 0.0, -1.0])
    assert store.wait_indexed(10)
    refresher = PoolRefresher(client, lists, POLICY, index_name=store.index_name, model=MODEL)
    outcome = refresher.refresh(moved, [])
    lists.commit(outcome.lists)

    # q's list takes p's change, without the score of m's overwritten vector: m's writer handles m.
    current = {pid: store.embeddings([pid])[pid] for pid in CATALOG}
    expected = exact_lists(current, POLICY)["q"]
    assert listed(lists, "q") == [n.product_id for n in expected] == ["p", "a"]
