"""ListStore against a real Redis: list versions, stored JSON, and exact rev sets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
import redis

from simstream.core.list_store import ListProposal, ListStore, ListWrite
from simstream.core.vector_store import Neighbor
from simstream.schemas.codec import decode_similar_items

pytestmark = pytest.mark.integration

MODEL = "test-model@1"
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


def test_list_versions_rise_with_every_write_and_survive_delete(lists: ListStore) -> None:
    versions = [lists.write_lists({"p": ListWrite(items("a"), v, MODEL)})["p"].list_version for v in (1, 2, 2)]
    assert versions == sorted(set(versions))
    assert lists.delete_list("p")
    assert not lists.delete_list("p")
    assert lists.read_list("p") is None
    assert lists.write_lists({"p": (items("b"), 4, MODEL)})["p"].list_version > versions[-1]


def test_the_catalog_sequence_is_a_clock_that_passes_a_lost_past(lists: ListStore, redis_client: redis.Redis) -> None:
    """A Redis restored from an older snapshot holds an older sequence: the next stamp still outranks
    every list emitted before the loss (they were stamped below the server's time then)."""
    first = lists.write_lists({"p": ListWrite(items("a"), 1, MODEL)})["p"].list_version
    (seconds, micros) = redis_client.time()
    assert first <= seconds * 1_000_000 + micros
    redis_client.set(lists.keys.catalog_sequence, 5)  # the older snapshot
    assert lists.write_lists({"q": ListWrite(items("a"), 1, MODEL)})["q"].list_version > first
    redis_client.set(lists.keys.catalog_sequence, 2**52)  # ahead of the clock: still one more per write
    assert lists.write_lists({"q": ListWrite(items("b"), 2, MODEL)})["q"].list_version == 2**52 + 1


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
            if "p" in written:  # absent: the other writer's fresher list was already in flight
                seen[worker].append(written["p"].list_version)

    threads = [threading.Thread(target=run, args=(worker,)) for worker in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    written = sorted(seen[0] + seen[1])
    assert len(set(written)) == len(written)
    final = lists.read_list("p")
    # The last stamp handed out (the sequence's value now) is the list that is current.
    sequence = int(clients[0].get(lists.keys.catalog_sequence) or 0)
    assert final is not None and final.list_version == written[-1] == sequence
    # Only the last writer's single member still lists p: every other member was removed from rev.
    (member,) = [n.product_id for n in final.items]
    assert {pid for pid in (f"m{w}-{r}" for w in (0, 1) for r in range(50)) if lists.rev(pid)} == {member}
    for client in clients:
        client.close()


# --- ordering of concurrent refreshes (PREPARE_LIST / WRITE_LIST) -----------------------------------


def proposal(members: list[str], stamp: int, **options: object) -> ListProposal:
    return ListProposal(ListWrite(items(*members), 1, MODEL), stamp, **options)  # type: ignore[arg-type]


def test_a_list_computed_before_the_current_one_is_never_emitted(lists: ListStore) -> None:
    fresh = lists.prepare({"p": proposal(["new"], 7)}, check_members=False)
    assert list(fresh.ready) == ["p"]
    lists.commit(fresh.ready.values())
    stale = lists.prepare({"p": proposal(["old"], 5)}, check_members=False)
    assert (stale.ready, stale.superseded) == ({}, 1)
    same = lists.prepare({"p": proposal(["other"], 7)}, check_members=False)  # equally fresh: nothing new
    assert (same.ready, same.superseded) == ({}, 1)
    replay = lists.prepare({"p": proposal(["new"], 7, forced=True)}, check_members=False)
    assert list(replay.ready) == ["p"]  # a replay re-emits what its aborted run emitted


def test_the_fresher_list_wins_whatever_order_they_commit_in(lists: ListStore) -> None:
    older = lists.prepare({"p": proposal(["a"], 3)}, check_members=False).ready
    newer = lists.prepare({"p": proposal(["b"], 4)}, check_members=False).ready
    assert older and newer
    assert lists.commit(newer.values()) == [True]
    assert lists.commit(older.values()) == [False]
    current = lists.read_list("p")
    assert current is not None and (current.list_version, current.items[0].product_id) == (4, "b")
    # A staler list is still emitted while a fresher one is only in flight (it may never land)...
    fresher = lists.prepare({"p": proposal(["c"], 9)}, check_members=False).ready
    staler = lists.prepare({"p": proposal(["d"], 8)}, check_members=False).ready
    assert fresher and staler
    # ...and whichever lands first, the fresher is current at the end.
    assert lists.commit(staler.values()) == [True]
    assert lists.commit(fresher.values()) == [True]
    current = lists.read_list("p")
    assert current is not None and current.list_version == 9


def test_an_unchanged_list_is_skipped_and_fences_staler_ones(lists: ListStore) -> None:
    lists.commit(lists.prepare({"p": proposal(["a"], 2)}, check_members=False).ready.values())
    skipped = lists.prepare({"p": proposal(["a"], 6, compared_with=2, unchanged=True)}, check_members=False)
    assert (skipped.ready, skipped.unchanged) == ({}, 1)
    # Computed before the skipped one (stamp 4 < 6): it may miss writes the skipped one saw.
    assert not lists.prepare({"p": proposal(["z"], 4)}, check_members=False).ready
    assert lists.prepare({"p": proposal(["z"], 8)}, check_members=False).ready


def test_an_unchanged_list_is_emitted_while_a_staler_one_is_in_flight(lists: ListStore) -> None:
    lists.commit(lists.prepare({"p": proposal(["a"], 2)}, check_members=False).ready.values())
    in_flight = lists.prepare({"p": proposal(["stale"], 3)}, check_members=False).ready
    assert in_flight
    # Equal to the committed list, but the stale one will reach the topic: this one must outrank it.
    again = lists.prepare({"p": proposal(["a"], 5, compared_with=2, unchanged=True)}, check_members=False)
    assert list(again.ready) == ["p"] and again.ready["p"].list_version == 5
    lists.commit(again.ready.values())
    lists.commit(in_flight.values())
    current = lists.read_list("p")
    assert current is not None and current.list_version == 5


def test_a_list_naming_a_deleted_product_goes_back_for_recomputation(
    lists: ListStore, redis_client: redis.Redis
) -> None:
    for pid in ("p", "a"):
        redis_client.hset(lists.keys.product(pid), "title", pid)
    outcome = lists.prepare({"p": proposal(["a", "gone"], 3)})
    assert (outcome.ready, outcome.gone) == ({}, ["p"])
    assert list(lists.prepare({"p": proposal(["a"], 3)}).ready) == ["p"]


def test_a_delete_fences_the_lists_computed_before_it(lists: ListStore, redis_client: redis.Redis) -> None:
    redis_client.set(lists.keys.catalog_sequence, 10)
    computed_before = lists.prepare({"p": proposal(["a"], 9)}, check_members=False).ready
    lists.delete_list("p")
    assert lists.commit(computed_before.values()) == [False]
    assert lists.read_list("p") is None
