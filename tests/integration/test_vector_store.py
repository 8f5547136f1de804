"""RedisVectorStore against a real Redis 8 + RediSearch: fencing, index checks, filtered and exact KNN."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import redis

from simstream.core import vector_queries
from simstream.core.errors import EmbeddingRequiredError, IndexMismatchError, StoreError
from simstream.core.redis_client import command
from simstream.core.redis_replies import SearchReply, parse_search_keys
from simstream.core.similarity import SimilarityPolicy, compute_lists, exact_lists
from simstream.core.vector_store import (
    Algorithm,
    KnnFilter,
    ProductWrite,
    RedisVectorStore,
    UpsertResult,
    Vector,
)

pytestmark = pytest.mark.integration

DIM = 8
MODEL = "test-model@1"
INDEX_TIMEOUT_S = 30.0

StoreFactory = Callable[..., RedisVectorStore]


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def redis_client(request: pytest.FixtureRequest, redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, protocol=request.param)
    yield client
    client.close()


@pytest.fixture
def make_store(redis_client: redis.Redis, unique_name: str) -> Iterator[StoreFactory]:
    """Stores on a per-test prefix; every index and key they made is removed afterwards."""
    made: list[RedisVectorStore] = []

    def make(
        index_suffix: str = "v1",
        *,
        algorithm: Algorithm = "HNSW",
        client: redis.Redis | None = None,
        prefix_suffix: str = "",
    ) -> RedisVectorStore:
        store = RedisVectorStore(
            client or redis_client,
            prefix=f"{unique_name}{prefix_suffix}:",
            index_name=f"{unique_name}-idx-{index_suffix}",
            index_alias=f"{unique_name}-idx",
            hnsw_m=16,
            hnsw_ef_construction=200,
            hnsw_ef_runtime=200,
            algorithm=algorithm,
        )
        made.append(store)
        return store

    yield make
    for store in made:
        if store.alias_target() == store.index_name:
            command(redis_client, "FT.ALIASDEL", store.index_alias)
        with contextlib.suppress(StoreError):  # cleanup only: the test may never have created it
            store.drop_index()
    for key in redis_client.scan_iter(match=f"{unique_name}*", count=1000):
        redis_client.delete(key)


@pytest.fixture
def store(make_store: StoreFactory) -> RedisVectorStore:
    created = make_store()
    created.ensure_index(DIM, MODEL)
    return created


def unit(*values: float) -> Vector:
    padded = np.zeros(DIM, dtype=np.float32)
    padded[: len(values)] = values
    return (padded / np.linalg.norm(padded)).astype(np.float32)


def write(
    product_id: str,
    version: int,
    embedding: Vector | None,
    *,
    title: str = "a product",
    brand: str = "Acme",
    category: str = "Gadgets",
    price: float | None = 10.0,
    content_hash: str = "hash-1",
) -> ProductWrite:
    return ProductWrite(
        product_id=product_id,
        version=version,
        content_hash=content_hash,
        model=MODEL,
        title=title,
        brand=brand,
        category=category,
        price=price,
        updated_at=1_764_000_000.0 + version,
        embedding=embedding,
    )


# --- version fencing -------------------------------------------------------------------------


def test_older_or_equal_version_changes_nothing(store: RedisVectorStore) -> None:
    assert store.upsert([write("p1", 5, unit(1), title="v5")]) == [True]
    assert store.upsert([write("p1", 4, unit(0, 1), title="v4"), write("p1", 5, unit(0, 1), title="again")]) == [
        False,
        False,
    ]
    assert store.metadata(["p1"])["p1"]["title"] == "v5"
    np.testing.assert_array_equal(store.embeddings(["p1"])["p1"], unit(1))
    state = store.states(["p1"])["p1"]
    assert state is not None and (state.version, state.exists, state.content_hash) == (5, True, "hash-1")
    assert store.upsert([write("p1", 6, unit(0, 1), title="v6")]) == [True]
    assert store.metadata(["p1"])["p1"]["title"] == "v6"


def test_delete_then_replayed_older_create_does_not_resurrect(store: RedisVectorStore) -> None:
    assert store.upsert([write("p1", 1, unit(1)), write("p2", 1, unit(1, 0.1))]) == [True, True]
    assert store.delete([("p1", 2)]) == [True]
    assert store.upsert([write("p1", 1, unit(1)), write("p1", 2, unit(1))]) == [False, False]
    assert store.delete([("p1", 2), ("p1", 1)]) == [False, False]
    state = store.states(["p1"])["p1"]
    assert state is not None and (state.version, state.exists) == (2, False)
    assert store.embeddings(["p1"]) == {}
    assert store.count() == 1
    assert [n.product_id for n in store.knn(unit(1), 5)] == ["p2"]
    assert store.upsert([write("p1", 3, unit(1))]) == [True]
    assert store.count() == 2


def test_states_of_unknown_products_are_none(store: RedisVectorStore) -> None:
    assert store.states(["never-seen"]) == {"never-seen": None}
    assert store.delete([("never-seen-either", 3)]) == [True]  # the fence remembers the tombstone
    assert store.upsert([write("never-seen-either", 2, unit(1))]) == [False]


def test_concurrent_writers_leave_the_highest_version(make_store: StoreFactory, redis_url: str) -> None:
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    stores = [make_store(client=client) for client in clients]
    stores[0].ensure_index(DIM, MODEL)
    stores[1].ensure_index(DIM, MODEL)
    versions = list(range(1, 121))
    rng = np.random.default_rng(3)
    orders = [rng.permutation(versions).tolist(), rng.permutation(versions).tolist()]
    applied: list[list[int]] = [[], []]

    def run(worker: int) -> None:
        for chunk_start in range(0, len(versions), 10):
            chunk = orders[worker][chunk_start : chunk_start + 10]
            writes = [write(pid, v, unit(1, v), title=f"t{v}") for v in chunk for pid in ("a", "b")]
            flags = stores[worker].upsert(writes)
            applied[worker] += [w.version for w, ok in zip(writes, flags, strict=True) if ok and w.product_id == "a"]

    threads = [threading.Thread(target=run, args=(worker,)) for worker in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    for pid in ("a", "b"):
        state = stores[0].states([pid])[pid]
        assert state is not None and state.version == 120
        assert stores[0].metadata([pid])[pid]["title"] == "t120"
    # Each version applies at most once over both writers, and each writer saw its applied versions rise.
    assert len(applied[0]) + len(applied[1]) == len(set(applied[0]) | set(applied[1]))
    assert all(seq == sorted(seq) for seq in applied)
    assert 120 in applied[0] + applied[1]
    for client in clients:
        client.close()


# --- metadata-only updates -------------------------------------------------------------------


def test_metadata_only_update_keeps_the_embedding(store: RedisVectorStore) -> None:
    store.upsert([write("p1", 1, unit(1, 2, 3), title="old", price=10.0)])
    assert store.upsert([write("p1", 2, None, title="new", category="Phones, Mobile", price=None)]) == [True]
    np.testing.assert_array_equal(store.embeddings(["p1"])["p1"], unit(1, 2, 3))
    assert store.metadata(["p1"])["p1"] == {"title": "new", "brand": "Acme", "category": "Phones, Mobile"}
    store.upsert([write("p2", 1, unit(1, 2, 3.1))])
    assert [n.product_id for n in store.knn(unit(1, 2, 3), 1, exclude_id="p2")] == ["p1"]
    assert store.knn(unit(1, 2, 3), 5, exclude_id="p2", flt=KnnFilter(min_price=0)) == []


def test_metadata_only_update_of_changed_content_needs_an_embedding(store: RedisVectorStore) -> None:
    store.upsert([write("p1", 1, unit(1), content_hash="h1")])
    stale_hash = write("p1", 2, None, content_hash="h2")
    never_embedded = write("p9", 1, None)
    fine = write("p3", 1, unit(0, 1))
    assert store.upsert_results([stale_hash, never_embedded]) == [UpsertResult.NEEDS_EMBEDDING] * 2
    with pytest.raises(EmbeddingRequiredError) as caught:
        store.upsert([stale_hash, fine])
    assert (caught.value.product_ids, caught.value.applied) == (["p1"], [False, True])
    state = store.states(["p1"])["p1"]
    assert state is not None and (state.version, state.content_hash) == (1, "h1")  # fence not moved


# --- index -----------------------------------------------------------------------------------


def test_ensure_index_refuses_another_dimension_or_model(make_store: StoreFactory, redis_client: redis.Redis) -> None:
    store = make_store()
    store.ensure_index(DIM, MODEL)
    store.ensure_index(DIM, MODEL)  # idempotent
    with pytest.raises(IndexMismatchError, match=r"dim=8 .*asked for dim=16") as caught:
        store.ensure_index(16, MODEL)
    assert "simstream model upgrade --to" in str(caught.value)  # the way to change models
    with pytest.raises(IndexMismatchError, match="other-model"):
        store.ensure_index(DIM, "other-model")
    # Without its metadata hash the dimension is still read from the index itself.
    redis_client.delete(store.keys.index_meta(store.index_name))
    with pytest.raises(IndexMismatchError, match="asked for dim=16"):
        make_store().ensure_index(16, MODEL)


def test_alias_points_at_the_first_index_until_promoted(make_store: StoreFactory) -> None:
    old = make_store("v1")
    old.ensure_index(DIM, MODEL)
    assert old.alias_target() == old.index_name
    new = make_store("v2", prefix_suffix="-v2")
    new.ensure_index(DIM * 2, "bigger-model")
    assert new.alias_target() == old.index_name
    new.promote_alias()
    assert old.alias_target() == new.index_name


def test_wait_indexed_covers_hashes_written_before_the_index(make_store: StoreFactory) -> None:
    store = make_store(algorithm="FLAT")
    rng = np.random.default_rng(11)
    store.upsert([write(f"p{i}", 1, unit(*rng.normal(size=DIM))) for i in range(60)])
    store.ensure_index(DIM, MODEL)
    assert store.wait_indexed(INDEX_TIMEOUT_S)
    assert store.count() == 60
    assert sorted(store.all_product_ids()) == sorted(f"p{i}" for i in range(60))


def test_the_indexed_ids_are_listed_whole_when_they_outnumber_the_first_ask(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(algorithm="FLAT")
    store.ensure_index(DIM, MODEL)
    rng = np.random.default_rng(12)
    ids = [f"p{i}" for i in range(45)]
    store.upsert([write(pid, 1, unit(*rng.normal(size=DIM))) for pid in ids])
    store.delete([(pid, 2) for pid in ids[:5]])
    # No slack: the listing gets as many ids as it asked for, so it must ask again (for twice as many).
    monkeypatch.setattr(vector_queries, "ID_SLACK", 0)
    counts: list[int] = []

    def counting(reply: Any) -> SearchReply:
        parsed = parse_search_keys(reply)
        counts.append(len(parsed.hits))
        return parsed

    monkeypatch.setattr(vector_queries, "parse_search_keys", counting)
    assert sorted(store.indexed_product_ids()) == sorted(ids[5:])
    assert counts == [0, 40, 40]  # asked for 40, then 81


# --- KNN -------------------------------------------------------------------------------------


def test_knn_excludes_self_and_scores_by_cosine(store: RedisVectorStore) -> None:
    store.upsert([write("q", 1, unit(1)), write("near", 1, unit(1, 0.2)), write("far", 1, unit(0, 1))])
    found = store.knn(unit(1), 2, exclude_id="q")
    assert [n.product_id for n in found] == ["near", "far"]
    assert found[0].score == pytest.approx(float(unit(1) @ unit(1, 0.2)), abs=1e-5)
    assert found[1].score == pytest.approx(0.0, abs=1e-5)
    assert [n.product_id for n in store.knn(unit(1), 1)] == ["q"]
    assert [n.product_id for n in store.knn_many([("q", unit(1))], 1)["q"]] == ["near"]


@pytest.mark.parametrize(
    "category",
    [
        "TV, Video & Home Audio",
        "Cameras/Photo (Digital) - 35mm",
        "Brand: Bose® {Pro} | 'x'",
        "数码 相机",
        "数码\u3000相机・カメラ",
    ],
)
def test_filtered_knn_finds_the_nearest_within_a_tag(store: RedisVectorStore, category: str) -> None:
    store.upsert(
        [
            write("query", 1, unit(1), category=category),
            write("global-nearest", 1, unit(1, 0.05), category="Something Else"),
            write("same-tag", 1, unit(1, 0.6), category=category, brand="Bose® Inc."),
            write("same-tag-far", 1, unit(0.2, 1), category=category),
            write("prefix-only", 1, unit(1, 0.01), category=category.split()[0]),
        ]
    )
    found = store.knn(unit(1), 5, exclude_id="query", flt=KnnFilter(category=category))
    assert [n.product_id for n in found] == ["same-tag", "same-tag-far"]
    by_brand = store.knn(unit(1), 5, exclude_id="query", flt=KnnFilter(brand="Bose® Inc."))
    assert [n.product_id for n in by_brand] == ["same-tag"]


def test_filtered_knn_honours_a_numeric_price_range(store: RedisVectorStore) -> None:
    store.upsert(
        [
            write("cheap-nearest", 1, unit(1, 0.01), price=5.0),
            write("in-range", 1, unit(1, 0.5), price=49.99),
            write("edge", 1, unit(1, 0.9), price=20.0),
            write("no-price", 1, unit(1, 0.02), price=None),
            write("pricey", 1, unit(1, 0.03), price=500.0),
        ]
    )
    found = store.knn(unit(1), 3, flt=KnnFilter(min_price=20, max_price=50))
    assert [n.product_id for n in found] == ["in-range", "edge"]
    assert [n.product_id for n in store.knn(unit(1), 1, flt=KnnFilter(min_price=100))] == ["pricey"]
    assert [n.product_id for n in store.knn(unit(1), 1)] == ["cheap-nearest"]


def clustered(n: int, clusters: int, seed: int) -> tuple[dict[str, Vector], dict[str, str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, DIM))
    vectors: dict[str, Vector] = {}
    categories: dict[str, str] = {}
    for i in range(n):
        cluster = i % clusters
        raw = centres[cluster] + 0.35 * rng.normal(size=DIM)
        vectors[f"sku-{i}"] = (raw / np.linalg.norm(raw)).astype(np.float32)
        categories[f"sku-{i}"] = f"Cat {cluster % 3}, Sub/{cluster % 3}"
    return vectors, categories


@pytest.mark.parametrize("same_category_only", [False, True])
def test_flat_index_matches_numpy_brute_force(make_store: StoreFactory, same_category_only: bool) -> None:
    store = make_store(algorithm="FLAT")
    store.ensure_index(DIM, MODEL)
    vectors, categories = clustered(300, 12, seed=5)
    store.upsert([write(pid, 1, vec, category=categories[pid]) for pid, vec in vectors.items()])
    assert store.wait_indexed(INDEX_TIMEOUT_S)
    policy = SimilarityPolicy(top_k=10, same_category_only=same_category_only)
    found = compute_lists(store, list(vectors), policy)
    reference = exact_lists(vectors, policy, categories)
    assert set(found) == set(vectors)
    for pid, expected in reference.items():
        assert [n.product_id for n in found[pid]] == [n.product_id for n in expected], pid
        assert [n.score for n in found[pid]] == pytest.approx([n.score for n in expected], abs=1e-5)


def test_redis_errors_become_store_errors(make_store: StoreFactory) -> None:
    missing_index = make_store("never-created")
    with pytest.raises(StoreError, match="never-created") as caught:
        missing_index.knn(unit(1), 3)
    assert isinstance(caught.value.__cause__, redis.exceptions.ResponseError)
