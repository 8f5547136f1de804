"""The streaming worker end to end on the real stack: real Kafka, Redis + RediSearch, real model."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import orjson
import pytest
from support.streaming import (
    RunningWorker,
    create_stream_topics,
    event,
    publish,
    publish_raw,
    read_dead_letters,
    stream_settings,
    wait_for,
)

from simstream.consumers.output_reader import read_last_records
from simstream.core.encoder import TransformerEncoder
from simstream.core.errors import StoreError
from simstream.core.hybrid import pair_score
from simstream.core.list_store import ListStore
from simstream.core.redis_client import make_redis_client
from simstream.core.redis_keys import RedisKeys
from simstream.core.similarity import SimilarityPolicy, exact_lists
from simstream.core.terms import TermsStore
from simstream.core.vector_store import Neighbor, RedisVectorStore
from simstream.demo import sample_catalog
from simstream.producers.catalog import read_catalog
from simstream.producers.publish import publish_file
from simstream.schemas.codec import decode_similar_items
from simstream.schemas.settings import Settings
from simstream.verify import run_verify

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(kafka_bootstrap: str, redis_url: str, unique_name: str) -> Iterator[Settings]:
    configured = stream_settings(kafka_bootstrap, redis_url, unique_name)
    create_stream_topics(configured)
    yield configured
    client = make_redis_client(configured)
    with contextlib.suppress(StoreError):  # a test whose worker never started has no index
        RedisVectorStore.from_settings(configured, client).drop_index(delete_documents=True)
    for key in client.scan_iter(match=f"{configured.redis_prefix}*", count=1000):
        client.delete(key)


def stores(settings: Settings) -> tuple[RedisVectorStore, ListStore]:
    client = make_redis_client(settings)
    return RedisVectorStore.from_settings(settings, client), ListStore.from_settings(settings, client)


def price_of(store: RedisVectorStore, product_id: str) -> float | None:
    price = store.metadata([product_id]).get(product_id, {}).get("price")
    return float(price) if price else None


def abt_buy_products(limit: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    abt, buy = sample_catalog()
    rows = [*read_catalog(abt, id_prefix="abt-"), *read_catalog(buy, id_prefix="buy-")]
    return [(row.product_id, row.product) for row in rows[:limit]]


def test_whole_abt_buy_catalog_is_embedded_and_every_list_is_the_exact_top_k(
    settings: Settings, default_encoder: TransformerEncoder
) -> None:
    abt, buy = sample_catalog()
    with RunningWorker(settings, default_encoder) as running:
        sent = sum(
            publish_file(settings, path, id_prefix=p, progress=False).sent for path, p in ((abt, "abt-"), (buy, "buy-"))
        )
        assert sent == 2173
        store, lists = stores(settings)
        wait_for(lambda: store.count() == sent and len(running.stats.emitted_ids) == sent, 900, "every list")
        # Drained: no batch in flight that could still refresh lists.
        wait_for(lambda: len(running.worker._batcher) == 0, 60, "the batcher to drain")

    ids = store.all_product_ids()
    vectors = store.embeddings(ids)
    assert len(vectors) == 2173
    norms = np.linalg.norm(np.stack(list(vectors.values())), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-3)

    # The default scoring (hybrid) with the term snapshot the first load counted over this catalog.
    terms = TermsStore(make_redis_client(settings), RedisKeys(settings.redis_prefix)).current()
    assert terms is not None and terms.documents == 2173
    policy = replace(SimilarityPolicy.from_settings(settings), terms=terms)
    assert not policy.weights.is_dense_only
    texts = store.texts(ids)
    exact = exact_lists(vectors, policy, texts=texts)
    emitted = read_last_records(settings)
    assert set(emitted) == set(ids)
    equal = 0
    for pid in ids:
        value = emitted[pid]
        assert value is not None
        record = decode_similar_items(value)
        assert len(record.items) == settings.top_k
        stored = lists.read_list(pid)
        assert stored is not None and stored.payload == value  # Redis and the topic agree
        equal += same_top_k(pid, [i.product_id for i in record.items], exact[pid], vectors, texts, policy)
    assert equal / len(ids) >= 0.99, f"only {equal}/{len(ids)} lists equal the brute-force top-K"
    report = run_verify(settings)
    assert report.misordered_lists == 0 and report.rev_errors == 0 and report.output_mismatches == 0


def same_top_k(
    pid: str,
    listed: list[str],
    exact: list[Neighbor],
    vectors: dict[str, np.ndarray],
    texts: dict[str, str],
    policy: SimilarityPolicy,
) -> bool:
    """Equal membership, where products tied (within float32 noise) at the K-th score are interchangeable:
    real catalogs hold identical titles, and Redis (float32) and numpy (float64) break such ties differently."""
    kth = exact[-1].score
    swapped = set(listed) ^ {n.product_id for n in exact}
    weights, terms = policy.weights, policy.terms
    return all(
        abs(pair_score(texts[pid], texts[other], float(vectors[pid] @ vectors[other]), weights, terms) - kth) < 1e-5
        for other in swapped
    )


def test_title_update_reembeds_price_update_does_not_and_older_versions_change_nothing(
    settings: Settings, default_encoder: TransformerEncoder
) -> None:
    products = abt_buy_products(40)
    store, lists = stores(settings)
    with RunningWorker(settings, default_encoder) as running:
        publish(settings, [event(pid, 1, product) for pid, product in products])
        wait_for(lambda: len(running.stats.emitted_ids) == 40, 300, "the first lists")
        target, product = products[0]
        encoded_before = default_encoder.items_encoded
        before = lists.read_list(target)
        assert before is not None

        publish(settings, [event(target, 2, {**product, "title": "Completely different garden hose 50 ft"})])
        wait_for(lambda: (lists.read_list(target) or before).source_version == 2, 120, "the title update")
        assert default_encoder.items_encoded == encoded_before + 1
        retitled = lists.read_list(target)
        assert retitled is not None and retitled.list_version > before.list_version
        assert retitled.items != before.items

        encoded_before = default_encoder.items_encoded
        publish(
            settings,
            [event(target, 3, {**product, "title": "Completely different garden hose 50 ft", "price": 1.5})],
        )
        wait_for(lambda: price_of(store, target) == 1.5, 120, "the price update")
        assert default_encoder.items_encoded == encoded_before  # price-only: the encoder never ran

        publish(settings, [event(target, 1, {**product, "title": "An old revision that must lose"})])
        marker = event(products[1][0], 5, {**products[1][1], "price": 2.0})
        publish(settings, [marker])  # same partition order is not guaranteed: wait for a later marker
        wait_for(lambda: price_of(store, marker.product_id) == 2.0, 120, "marker")
        wait_for(lambda: running.stats.stale >= 1, 60, "the old version to be dropped")
    state = store.states([target])[target]
    assert state is not None and state.version == 3
    assert store.metadata([target])[target]["title"] == "Completely different garden hose 50 ft"


def malformed_records() -> list[tuple[bytes | None, bytes | None]]:
    good: dict[str, Any] = orjson.loads(event("sku-ok", 1, {"title": "Fine"}).model_dump_json(by_alias=True))
    records: list[tuple[bytes | None, bytes | None]] = []
    for i in range(10):
        records.append((b"sku-bad", b"{not json" + str(i).encode()))
    for field in ("product_id", "version", "type", "event_id", "occurred_at"):
        for i in range(4):
            broken = {k: v for k, v in good.items() if k != field}
            broken["event_id"] = broken.get("event_id", good["event_id"])
            records.append((b"sku-ok", orjson.dumps(broken if field != "event_id" else {**broken, "event_id": i})))
    for i in range(5):
        records.append((b"sku-ok", orjson.dumps({**good, "version": f"v{i}"})))
    for i in range(5):
        records.append((b"sku-ok", orjson.dumps({**good, "schema": f"product.v{i + 2}"})))
    for _ in range(5):
        records.append((b"sku-ok", b"{" + b" " * 1_100_000 + b"}"))
    for _ in range(5):
        records.append((None, orjson.dumps(good)))
    assert len(records) == 50
    return records


def test_fifty_malformed_records_go_to_the_dead_letter_topic_and_the_worker_goes_on(
    settings: Settings, default_encoder: TransformerEncoder
) -> None:
    with RunningWorker(settings, default_encoder) as running:
        publish_raw(settings, malformed_records())
        publish(settings, [event("sku-after", 1, {"title": "Sony Turntable PSLX350H"})])
        wait_for(lambda: "sku-after" in running.stats.emitted_ids, 120, "the good record after the bad ones")
        assert running.stats.dead_letters == 50
        assert running.alive()
    dead = read_dead_letters(settings)
    assert len(dead) == 50
    reasons = {headers["reason"] for headers in dead}
    assert {"invalid_json", "validation_error", "unknown_schema", "too_large", "empty_key"} <= reasons
    assert all(h["source.topic"] == settings.input_topic and h["detail"] for h in dead)


def test_sigkill_mid_stream_loses_no_product_and_sigterm_exits_cleanly(settings: Settings) -> None:
    products = abt_buy_products(600)
    env = {**os.environ, **{f"SIMSTREAM_{k.upper()}": str(v) for k, v in worker_env(settings).items()}}
    command = [sys.executable, "-m", "simstream", "run"]
    store, lists = stores(settings)
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        publish(settings, [event(pid, 1, product) for pid, product in products])
        wait_for(lambda: len(store.all_product_ids()) >= 50, 300, "the first products to be stored")
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        assert store.count() < len(products), "killed too late to prove anything"
    finally:
        if first.poll() is None:
            first.kill()
    second = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: store.count() == len(products), 600, "every product after the restart")
        wait_for(lambda: len(lists.read_lists([pid for pid, _ in products])) == len(products), 120, "every list")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, (second.stderr.read() if second.stderr else b"").decode()[-2000:]


def worker_env(settings: Settings) -> dict[str, Any]:
    keys = (
        "kafka_bootstrap",
        "redis_url",
        "input_topic",
        "output_topic",
        "dlq_topic",
        "group_id",
        "redis_prefix",
        "index_name",
        "index_alias",
        "batch_max_wait_ms",
    )
    return {key: getattr(settings, key) for key in keys}
