"""ListStore against a real Redis: list versions, stored JSON, and exact rev sets."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
import redis
from support.list_protocol_cases import (
    CASES,
    MEMBER_VERSION,
    a_member_written_since_it_was_scored_goes_back,
    a_pool_naming_a_deleted_product_goes_back,
)

from simstream.core.list_store import KTH_LAG, Lists, ListState, ListStore, ListWrite, PoolProposal
from simstream.core.pools import COMPLETE, Pool
from simstream.core.vector_store import Neighbor
from simstream.schemas.codec import decode_similar_items

pytestmark = pytest.mark.integration

MODEL = "test-model@1"
MEMBERS = ("a", "b", "c", "x", "z", "stale")
FIXED_NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def redis_client(request: pytest.FixtureRequest, redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, protocol=request.param)
    yield client
    client.close()


@pytest.fixture
def lists(redis_client: redis.Redis, unique_name: str) -> Iterator[ListStore]:
    yield ListStore(redis_client, prefix=f"{unique_name}:", clock=lambda: FIXED_NOW)
    for key in redis_client.scan_iter(match=f"{unique_name}:*", count=1000):
        redis_client.delete(key)


def items(*ids: str) -> list[Neighbor]:
    return [Neighbor(pid, 0.9 - 0.01 * rank) for rank, pid in enumerate(ids)]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_ordering_rules(case: Callable[[Lists], None], lists: ListStore, redis_client: redis.Redis) -> None:
    store_members(lists, redis_client, MEMBERS)
    case(lists)


def store_members(lists: ListStore, redis_client: redis.Redis, members: tuple[str, ...]) -> None:
    """PREPARE checks that the products entering a pool exist at the version they were scored with."""
    for member in members:
        redis_client.hset(lists.keys.product(member), mapping={"title": member, "version": MEMBER_VERSION})


def test_a_pool_naming_a_deleted_product_goes_back(lists: ListStore, redis_client: redis.Redis) -> None:
    store_members(lists, redis_client, ("a", "gone"))
    a_pool_naming_a_deleted_product_goes_back(lists, lambda pid: redis_client.delete(lists.keys.product(pid)))


def test_a_member_written_since_it_was_scored_goes_back(lists: ListStore, redis_client: redis.Redis) -> None:
    store_members(lists, redis_client, ("a", "b", "m"))
    a_member_written_since_it_was_scored_goes_back(
        lists, lambda pid, version: redis_client.hset(lists.keys.product(pid), "version", version)
    )


def test_kth_is_written_when_the_bound_falls_below_it_or_rises_past_the_lag(
    lists: ListStore, redis_client: redis.Redis
) -> None:
    """kth (indexed: a write re-indexes the product's vector too) may lag below the bound, never above."""
    store_members(lists, redis_client, ("p", "a"))

    def indexed_after(bound: float) -> float:
        state = lists.read_states(["p"])["p"]
        pool = Pool((("a", 0.9, 0.9),), bound, 1)
        items = [Neighbor("a", 0.9)]
        proposal = PoolProposal(state, pool, items, 1, MODEL, check_owner=False, member_versions={"a": MEMBER_VERSION})
        assert lists.prepare({"p": proposal}).retry == []
        return float(redis_client.hget(lists.keys.product("p"), "kth"))

    assert indexed_after(0.5) == 0.5  # none yet
    assert indexed_after(0.5 + KTH_LAG / 2) == 0.5  # a small rise: the lower value stays
    assert indexed_after(0.5 + 2 * KTH_LAG) == 0.5 + 2 * KTH_LAG  # past the lag
    assert indexed_after(0.4) == 0.4  # a fall, however small, at once
    assert indexed_after(0.4 - KTH_LAG / 10) == 0.4 - KTH_LAG / 10
    assert indexed_after(COMPLETE) == COMPLETE


def test_the_list_clock_passes_a_lost_past(lists: ListStore, redis_client: redis.Redis) -> None:
    """A Redis restored from an older snapshot holds older list counters: the next version still
    outranks every list emitted before the loss (they were versioned below the server's time then)."""
    first = lists.write_lists({"p": ListWrite(items("a"), 1, MODEL)})["p"].list_version
    (seconds, micros) = redis_client.time()
    assert first <= seconds * 1_000_000 + micros
    redis_client.delete(lists.keys.list_meta("p"), lists.keys.similar("p"))  # the older snapshot
    assert lists.write_lists({"p": ListWrite(items("a"), 1, MODEL)})["p"].list_version > first
    redis_client.hset(lists.keys.list_meta("p"), "clock", 2**52)  # ahead of the clock: still one more
    assert lists.write_lists({"p": ListWrite(items("b"), 2, MODEL)})["p"].list_version == 2**52 + 1


def test_stored_json_is_the_returned_record(lists: ListStore, redis_client: redis.Redis) -> None:
    written = lists.write_lists({"sku-1": ListWrite(items("sku-9", "sku-3"), 17, MODEL)})["sku-1"]
    raw = redis_client.get(lists.keys.similar("sku-1"))
    assert raw == written.payload
    record = decode_similar_items(written.payload)
    assert (record.product_id, record.list_version, record.source_version, record.model) == (
        "sku-1",
        written.list_version,
        17,
        MODEL,
    )
    assert record.computed_at == FIXED_NOW
    assert [(i.product_id, i.score) for i in record.items] == [("sku-9", 0.9), ("sku-3", 0.89)]
    assert lists.read_list("sku-1") == written
    assert lists.read_lists(["sku-1", "missing"]) == {"sku-1": written}


def test_rev_sets_follow_membership_changes(lists: ListStore) -> None:
    lists.write_lists({"p": (items("a", "b"), 1, MODEL), "q": (items("b"), 1, MODEL)})
    assert lists.rev_many(["a", "b", "c"]) == {"a": {"p"}, "b": {"p", "q"}, "c": set()}
    lists.write_lists({"p": (items("b", "c"), 2, MODEL)})
    assert lists.rev_many(["a", "b", "c"]) == {"a": set(), "b": {"p", "q"}, "c": {"p"}}
    lists.delete_list("q")
    assert lists.rev("b") == {"p"}
    lists.write_lists({"p": ([], 3, MODEL)})
    assert lists.rev_many(["a", "b", "c"]) == {"a": set(), "b": set(), "c": set()}


def test_rev_sets_stay_exact_over_random_rewrites(lists: ListStore) -> None:
    rng = np.random.default_rng(21)
    catalog = [f"p{i}" for i in range(15)]
    current: dict[str, list[str]] = {}
    for step in range(40):
        owners = rng.choice(catalog, size=3, replace=False).tolist()
        if step % 7 == 6 and current:
            gone = sorted(current)[int(rng.integers(len(current)))]
            lists.delete_list(gone)
            del current[gone]
        batch = {}
        for owner in owners:
            others = [pid for pid in catalog if pid != owner]
            members = rng.choice(others, size=int(rng.integers(0, 6)), replace=False).tolist()
            batch[owner] = ListWrite(items(*members), step, MODEL)
            current[owner] = members
        lists.write_lists(batch)
        expected = {pid: {owner for owner, members in current.items() if pid in members} for pid in catalog}
        assert lists.rev_many(catalog) == expected, f"step {step}"


def test_concurrent_writers_the_freshest_list_wins(lists: ListStore, redis_url: str, unique_name: str) -> None:
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    writers = [ListStore(client, prefix=f"{unique_name}:") for client in clients]
    seen: list[list[int]] = [[], []]

    def run(worker: int) -> None:
        for round_ in range(50):
            written = writers[worker].write_lists({"p": (items(f"m{worker}-{round_}"), round_, MODEL)})
            seen[worker].append(written["p"].list_version)

    threads = [threading.Thread(target=run, args=(worker,)) for worker in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    written = sorted(seen[0] + seen[1])
    assert len(set(written)) == len(written) == 100  # a writer that lost a race read again and won later
    final = lists.read_list("p")
    # The last version handed out (the list's clock now) is the list that is current.
    clock = int(clients[0].hget(lists.keys.list_meta("p"), "clock") or 0)
    assert final is not None and final.list_version == written[-1] == clock
    # Only the last writer's single member still lists p: every other member was removed from rev.
    (member,) = [n.product_id for n in final.items]
    assert {pid for pid in (f"m{w}-{r}" for w in (0, 1) for r in range(50)) if lists.rev(pid)} == {member}
    for client in clients:
        client.close()


def test_a_store_reads_what_other_writers_stored_over_the_bytes_it_remembers(
    lists: ListStore, redis_client: redis.Redis, unique_name: str
) -> None:
    """Its own writes are read back without decoding them again (core/decode_memo); what another writer
    stored, or a delete, is read as it is: the result equals a store that remembers nothing."""
    store_members(lists, redis_client, MEMBERS)
    other = ListStore(redis_client, prefix=f"{unique_name}:", clock=lambda: FIXED_NOW)
    fresh = ListStore(redis_client, prefix=f"{unique_name}:", memo_lists=0)

    def same_as_fresh(ids: list[str]) -> dict[str, ListState]:
        states = lists.read_states(ids)
        assert states == fresh.read_states(ids)
        return states

    lists.write_lists({"p": ListWrite(items("a", "b"), 1, MODEL), "q": ListWrite(items("c"), 1, MODEL)})
    assert [n.product_id for n in same_as_fresh(["p"])["p"].current.items] == ["a", "b"]  # type: ignore[union-attr]
    other.write_lists({"p": ListWrite(items("x"), 2, MODEL)})
    state = same_as_fresh(["p", "q"])["p"]
    assert state.members == {"x"} and state.current is not None and state.current.source_version == 2
    lists.write_lists({"p": ListWrite(items("z", "a"), 3, MODEL)})
    assert same_as_fresh(["p"])["p"].members == {"z", "a"}
    lists.delete_list("q")
    gone = same_as_fresh(["q"])["q"]
    assert gone.pool is None and gone.current is None and not gone.members
