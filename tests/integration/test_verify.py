"""``simstream verify`` against a real Redis and a real output topic.

Each test builds a small correct state the way the worker leaves it (FLAT index, so KNN is exact;
lists rewritten after a delete; every list and the tombstone on the topic, older records first), then
corrupts one thing and checks that the matching counter, and only it, moves.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import orjson
import pytest
import redis
from confluent_kafka import Producer

from simstream.consumers.output_reader import OutputReadError
from simstream.core.list_store import ListStore, StoredList
from simstream.core.redis_client import make_redis_client
from simstream.core.similarity import SimilarityPolicy, compute_lists
from simstream.core.vector_store import ProductWrite, RedisVectorStore
from simstream.schemas.settings import Settings
from simstream.verify import VerifyReport, add_verify_arguments, cmd_verify, run_verify

pytestmark = pytest.mark.integration

MODEL = "test-model@1"
DIM = 8
PRODUCTS = [f"sku-{i:02d}" for i in range(10)]
GONE = "sku-gone"
FLUSH_TIMEOUT_S = 30.0


@dataclass
class LiveState:
    settings: Settings
    client: redis.Redis
    store: RedisVectorStore
    lists: ListStore
    first_lists: dict[str, StoredList]  # the lists before GONE was deleted (older records on the topic)

    def produce(self, records: dict[str, bytes | None], producer_config: dict[str, str] | None = None) -> None:
        producer = Producer({"bootstrap.servers": self.settings.kafka_bootstrap, **(producer_config or {})})
        for key, value in records.items():
            producer.produce(self.settings.output_topic, key=key.encode(), value=value)
        assert producer.flush(FLUSH_TIMEOUT_S) == 0

    def current(self, product_id: str) -> StoredList:
        stored = self.lists.read_list(product_id)
        assert stored is not None
        return stored


def write_products(store: RedisVectorStore, ids: list[str], version: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    writes = [
        ProductWrite(
            product_id=pid,
            version=version,
            content_hash=f"h-{pid}",
            model=MODEL,
            title=pid,
            brand="brand",
            category="cat",
            price=1.0,
            updated_at=0.0,
            embedding=rng.standard_normal(DIM).astype(np.float32),
        )
        for pid in ids
    ]
    assert all(store.upsert(writes))


@pytest.fixture
def live(
    redis_url: str, kafka_bootstrap: str, unique_name: str, create_topic: Callable[..., str]
) -> Iterator[LiveState]:
    topic = create_topic(f"{unique_name}-similar", partitions=3)
    settings = Settings(
        redis_url=redis_url,
        redis_prefix=f"{unique_name}:",
        index_name=f"{unique_name}-idx",
        index_alias=f"{unique_name}-alias",
        vector_algorithm="FLAT",
        kafka_bootstrap=kafka_bootstrap,
        output_topic=topic,
        top_k=3,
    )
    client = make_redis_client(settings)
    store = RedisVectorStore.from_settings(settings, client)
    store.ensure_index(DIM, MODEL)
    lists = ListStore.from_settings(settings, client)
    policy = SimilarityPolicy.from_settings(settings)

    write_products(store, [*PRODUCTS, GONE], version=1, seed=5)
    first = lists.write_lists(
        {pid: (found, 1, MODEL) for pid, found in compute_lists(store, [*PRODUCTS, GONE], policy).items()}
    )
    # GONE is deleted: its list goes, every other list is recomputed (a higher list_version).
    assert store.delete([(GONE, 2)]) == [True]
    assert lists.delete_list(GONE)
    second = lists.write_lists(
        {pid: (found, 1, MODEL) for pid, found in compute_lists(store, PRODUCTS, policy).items()}
    )
    state = LiveState(settings, client, store, lists, first)
    state.produce({pid: stored.payload for pid, stored in first.items()})
    state.produce({**{pid: stored.payload for pid, stored in second.items()}, GONE: None})
    yield state
    store.drop_index(delete_documents=True)
    for key in client.scan_iter(match=f"{unique_name}:*", count=1000):
        client.delete(key)
    client.close()


def problems(report: VerifyReport) -> dict[str, int | None]:
    return {
        "missing_lists": report.missing_lists,
        "orphan_lists": report.orphan_lists,
        "deleted_in_lists": report.deleted_in_lists,
        "score_errors": report.score_errors,
        "misordered_lists": report.misordered_lists,
        "rev_errors": report.rev_errors,
        "output_mismatches": report.output_mismatches,
    }


CLEAN: dict[str, int | None] = {
    "missing_lists": 0,
    "orphan_lists": 0,
    "deleted_in_lists": 0,
    "score_errors": 0,
    "misordered_lists": 0,
    "rev_errors": 0,
    "output_mismatches": 0,
}


def test_correct_state_verifies_clean(live: LiveState, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_verify(live.settings, output_timeout_s=60)
    assert problems(report) == CLEAN
    assert (report.products, report.lists, report.sampled) == (len(PRODUCTS), len(PRODUCTS), len(PRODUCTS))
    assert report.output_records == len(PRODUCTS) + 1  # every list, and GONE's tombstone
    assert report.overlap_at_k_min == report.overlap_at_k_mean == 1.0

    parser = argparse.ArgumentParser()
    add_verify_arguments(parser)
    assert cmd_verify(parser.parse_args(["--json", "--sample", "4"]), live.settings) == 0
    printed = orjson.loads(capsys.readouterr().out)
    assert printed["ok"] is True and printed["sampled"] == 4 and printed["output_mismatches"] == 0


def test_list_holding_a_deleted_product(live: LiveState) -> None:
    victim = PRODUCTS[0]
    holders = live.lists.rev(victim)
    assert holders, "the fixture's lists should name every product somewhere"
    assert live.store.delete([(victim, 2)]) == [True]  # deleted, but no list was refreshed
    report = run_verify(live.settings)
    assert report.deleted_in_lists == len(holders)
    assert report.orphan_lists == 1  # the victim's own list is left behind
    assert report.products == len(PRODUCTS) - 1
    assert report.rev_errors == 0 and report.output_mismatches == 0


def test_missing_rev_entry(live: LiveState) -> None:
    owner = PRODUCTS[3]
    member = live.current(owner).items[0].product_id
    assert live.client.srem(live.lists.keys.rev(member), owner) == 1
    report = run_verify(live.settings)
    assert problems(report) == {**CLEAN, "rev_errors": 1}
    assert report.examples["rev_errors"] == (f"{owner} lists {member}, rev:{member} lacks it",)


def test_stale_output_record(live: LiveState) -> None:
    owner = PRODUCTS[4]
    live.produce({owner: live.first_lists[owner].payload})  # an older list arrives last
    report = run_verify(live.settings)
    assert problems(report) == {**CLEAN, "output_mismatches": 1}
    first, stored = live.first_lists[owner].list_version, live.current(owner).list_version
    assert first < stored
    assert report.examples["output_mismatches"] == (f"{owner}: list_version {first} on the topic, {stored} stored",)


def test_aborted_transaction_is_not_read(live: LiveState) -> None:
    owner = PRODUCTS[4]
    producer = Producer(
        {"bootstrap.servers": live.settings.kafka_bootstrap, "transactional.id": f"{owner}-{time.time_ns()}"}
    )
    producer.init_transactions(FLUSH_TIMEOUT_S)
    producer.begin_transaction()
    producer.produce(live.settings.output_topic, key=owner.encode(), value=live.first_lists[owner].payload)
    assert producer.flush(FLUSH_TIMEOUT_S) == 0  # on the broker before the abort (abort purges the queue)
    producer.abort_transaction(FLUSH_TIMEOUT_S)
    assert problems(run_verify(live.settings)) == CLEAN


def test_wrong_list_order(live: LiveState) -> None:
    owner = PRODUCTS[5]
    current = live.current(owner)
    # On the topic: the stored list_version with its items reversed.
    reversed_items = [{"product_id": n.product_id, "score": n.score} for n in reversed(current.items)]
    record = {**orjson.loads(current.payload), "items": reversed_items}
    live.produce({owner: orjson.dumps(record)})
    assert problems(run_verify(live.settings)) == {**CLEAN, "output_mismatches": 1}
    # In Redis: a reversed list, emitted as stored.
    rewritten = live.lists.write_lists({owner: (list(reversed(current.items)), 1, MODEL)})[owner]
    live.produce({owner: rewritten.payload})
    report = run_verify(live.settings)
    assert problems(report) == {**CLEAN, "misordered_lists": 1}
    assert report.examples["misordered_lists"] == (owner,)


def test_no_output_skips_kafka(live: LiveState) -> None:
    live.produce({PRODUCTS[6]: None})  # would be a mismatch if the topic were read
    report = run_verify(live.settings, check_output=False)
    assert report.output_mismatches is None and report.output_records is None
    assert run_verify(live.settings).output_mismatches == 1


def test_missing_output_topic_is_an_error(live: LiveState, unique_name: str) -> None:
    settings = live.settings.model_copy(update={"output_topic": f"{unique_name}-never-created"})
    with pytest.raises(OutputReadError, match="never-created"):
        run_verify(settings, output_timeout_s=10)
