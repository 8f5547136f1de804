"""Incremental lists stay exact: reverse-neighbour refresh, deletes, duplicates, reordering, replays.

Driven through the real worker on real Kafka and Redis with the real model; checked with
``simstream verify`` (exact brute force over every stored vector) and the output topic.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from support.streaming import RunningWorker, create_stream_topics, event, publish, settled, stream_settings, wait_for

from simstream.consumers.output_reader import read_last_records
from simstream.core.encoder import TransformerEncoder
from simstream.core.list_store import ListStore
from simstream.core.redis_client import make_redis_client
from simstream.core.vector_store import RedisVectorStore
from simstream.demo import sample_catalog
from simstream.producers.catalog import read_catalog
from simstream.schemas.codec import decode_similar_items
from simstream.schemas.events import ProductEvent
from simstream.schemas.settings import Settings
from simstream.verify import run_verify

pytestmark = pytest.mark.integration

CATALOG_SIZE = 16
TOP_K = 5


def real_rows() -> list[dict[str, Any]]:
    abt, _ = sample_catalog()
    # Every 37th Abt offer: real, varied products (TVs, speakers, cameras, ...), deterministic.
    return [row.product for row in list(read_catalog(abt))[::37][:CATALOG_SIZE]]


ROWS = real_rows()


def edited(product: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A random edit of a real row: words dropped or swapped in the title, the price changed."""
    words = product["title"].split()
    if len(words) > 2 and rng.random() < 0.5:
        del words[rng.randrange(len(words))]
    if len(words) > 2 and rng.random() < 0.5:
        i, j = rng.sample(range(len(words)), 2)
        words[i], words[j] = words[j], words[i]
    return {**product, "title": " ".join(words), "price": round(rng.uniform(5, 900), 2)}


@st.composite
def event_streams(draw: st.DrawFn) -> tuple[list[ProductEvent], dict[str, int], set[str]]:
    """Creates, updates and deletes with versions; then duplicated, reordered and replayed."""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    ops = draw(st.lists(st.tuples(st.integers(0, CATALOG_SIZE - 1), st.sampled_from("cud")), min_size=20, max_size=45))
    version: dict[str, int] = {}
    alive: set[str] = set()
    events: list[ProductEvent] = []
    for index in range(CATALOG_SIZE):  # the catalog exists first
        pid = f"p{index}"
        version[pid] = 1
        alive.add(pid)
        events.append(event(pid, 1, ROWS[index], kind="product.created"))
    for index, op in ops:
        pid = f"p{index}"
        version[pid] += rng.randint(1, 3)
        if op == "d":
            alive.discard(pid)
            events.append(event(pid, version[pid]))
        else:
            alive.add(pid)
            events.append(event(pid, version[pid], edited(ROWS[index], rng)))
    stream = list(events)
    for extra in draw(st.lists(st.integers(0, len(events) - 1), max_size=10)):
        stream.append(events[extra])  # duplicates and replays of older versions
    swaps = draw(st.lists(st.tuples(st.integers(0, len(stream) - 1), st.integers(0, len(stream) - 1)), max_size=15))
    for i, j in swaps:
        stream[i], stream[j] = stream[j], stream[i]  # reordering (across and within products)
    return stream, version, alive


@pytest.fixture(scope="module")
def stack_urls(kafka_bootstrap: str, redis_url: str) -> tuple[str, str]:
    return kafka_bootstrap, redis_url


def private_settings(urls: tuple[str, str], algorithm: str) -> Settings:
    configured = stream_settings(
        *urls, f"t-{uuid.uuid4().hex[:8]}", top_k=TOP_K, vector_algorithm=algorithm, refresh_fanout=50
    )
    create_stream_topics(configured)
    return configured


def drain(settings: Settings, running: RunningWorker) -> None:
    wait_for(lambda: settled(settings), 300, "the worker to commit every record")
    assert running.alive()


@pytest.mark.parametrize(("algorithm", "min_overlap"), [("FLAT", 1.0), ("HNSW", 0.99)])
@hypothesis_settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True
)
@given(scenario=event_streams())
def test_after_any_stream_every_list_is_the_exact_top_k_of_the_current_catalog(
    stack_urls: tuple[str, str],
    default_encoder: TransformerEncoder,
    algorithm: str,
    min_overlap: float,
    scenario: tuple[list[ProductEvent], dict[str, int], set[str]],
) -> None:
    stream, final_version, alive = scenario
    settings = private_settings(stack_urls, algorithm)
    with RunningWorker(settings, default_encoder) as running:
        publish(settings, stream)
        drain(settings, running)

    store = RedisVectorStore.from_settings(settings, make_redis_client(settings))
    states = store.states(list(final_version))
    for pid, version in final_version.items():
        state = states[pid]
        assert state is not None and state.version == version, pid  # the highest version won
        assert state.exists == (pid in alive), pid

    report = run_verify(settings)
    assert report.products == len(alive)
    assert report.overlap_at_k_min >= min_overlap, report.as_dict()
    assert report.missing_lists == 0 and report.orphan_lists == 0
    assert report.deleted_in_lists == 0
    assert report.rev_errors == 0
    assert report.output_mismatches == 0, report.as_dict()

    last = read_last_records(settings)
    for pid in final_version:
        if pid in alive:
            record = decode_similar_items(last[pid] or b"")
            assert record.source_version == final_version[pid]
        else:
            assert last.get(pid) is None  # a tombstone (or never listed)


@pytest.fixture
def flat_settings(stack_urls: tuple[str, str]) -> Iterator[Settings]:
    yield private_settings(stack_urls, "FLAT")


def test_a_new_nearest_neighbour_enters_the_lists_of_existing_products(
    flat_settings: Settings, default_encoder: TransformerEncoder
) -> None:
    lists = ListStore.from_settings(flat_settings, make_redis_client(flat_settings))
    base = {f"p{i}": ROWS[i] for i in range(CATALOG_SIZE)}
    twin_of = "p3"
    with RunningWorker(flat_settings, default_encoder) as running:
        publish(flat_settings, [event(pid, 1, product) for pid, product in base.items()])
        drain(flat_settings, running)
        before = lists.read_lists(list(base))
        assert all(len(stored.items) == TOP_K for stored in before.values())
        # A near copy of p3: it is p3's nearest neighbour, so p3's list (and others) must gain it.
        publish(flat_settings, [event("new", 1, {**ROWS[3], "title": ROWS[3]["title"] + " (renewed)"})])
        drain(flat_settings, running)
    after = lists.read_lists(list(base))
    assert after[twin_of].items[0].product_id == "new"
    gained = [pid for pid, stored in after.items() if "new" in {n.product_id for n in stored.items}]
    assert twin_of in gained
    for pid in gained:
        assert after[pid].list_version > before[pid].list_version
    assert run_verify(flat_settings).overlap_at_k_min == 1.0


def test_a_deleted_product_leaves_every_list_that_held_it_and_is_replaced(
    flat_settings: Settings, default_encoder: TransformerEncoder
) -> None:
    lists = ListStore.from_settings(flat_settings, make_redis_client(flat_settings))
    with RunningWorker(flat_settings, default_encoder) as running:
        publish(flat_settings, [event(f"p{i}", 1, ROWS[i]) for i in range(CATALOG_SIZE)])
        drain(flat_settings, running)
        holders = lists.rev("p5")
        assert holders, "p5 is in nobody's list: the test would prove nothing"
        publish(flat_settings, [event("p5", 2)])
        drain(flat_settings, running)
    after = lists.read_lists(sorted(holders))
    for pid in holders:
        members = [n.product_id for n in after[pid].items]
        assert "p5" not in members
        assert len(members) == TOP_K  # a replacement took its place
    assert lists.read_list("p5") is None
    assert read_last_records(flat_settings)["p5"] is None  # tombstone on the output topic
    report = run_verify(flat_settings)
    assert report.deleted_in_lists == 0 and report.overlap_at_k_min == 1.0


def test_a_stale_event_never_labels_a_refreshed_list_with_its_old_version(
    flat_settings: Settings, default_encoder: TransformerEncoder
) -> None:
    lists = ListStore.from_settings(flat_settings, make_redis_client(flat_settings))
    with RunningWorker(flat_settings, default_encoder) as running:
        publish(flat_settings, [event(f"p{i}", 1, ROWS[i]) for i in range(CATALOG_SIZE)])
        drain(flat_settings, running)
        publish(flat_settings, [event("p3", 2, {**ROWS[3], "price": 1.0})])
        drain(flat_settings, running)
        # In one batch: p3's old version again (stale) and a near copy of p3, whose arrival refreshes
        # p3's list: that list must carry p3's stored version, 2, not the stale event's 1.
        publish(
            flat_settings, [event("p3", 1, ROWS[3]), event("twin", 1, {**ROWS[3], "title": ROWS[3]["title"] + " X"})]
        )
        drain(flat_settings, running)
    p3 = lists.read_list("p3")
    assert p3 is not None and "twin" in {n.product_id for n in p3.items}
    assert p3.source_version == 2
    assert decode_similar_items(read_last_records(flat_settings)["p3"] or b"").source_version == 2
