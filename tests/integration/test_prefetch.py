"""A backlog of several batches per poll: each batch is encoded while the one before is applied, and
the lists come out exactly as without the overlap (``simstream verify``: exact brute force)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from support.streaming import RunningWorker, create_stream_topics, event, group_lag, publish, stream_settings, wait_for

from simstream.core.encoder import TransformerEncoder
from simstream.core.list_store import ListStore
from simstream.core.namespace import clear_redis_namespace
from simstream.demo import sample_catalog
from simstream.producers.catalog import read_catalog
from simstream.schemas.settings import Settings
from simstream.verify import run_verify

pytestmark = pytest.mark.integration

PRODUCTS = 120
BATCH_ITEMS = 16  # a poll of the backlog (up to 500 records) holds several batches


@pytest.fixture(params=["alo", "eos"])
def settings(
    request: pytest.FixtureRequest, kafka_bootstrap: str, redis_url: str, unique_name: str
) -> Iterator[Settings]:
    configured = stream_settings(
        kafka_bootstrap,
        redis_url,
        unique_name,
        exactly_once=request.param == "eos",
        vector_algorithm="FLAT",  # exact KNN: verify's brute force must agree on every list
        batch_max_items=BATCH_ITEMS,
        poll_max_records=500,
    )
    create_stream_topics(configured)
    try:
        yield configured
    finally:
        with contextlib.suppress(Exception):  # cleanup only: names are unique to the test
            clear_redis_namespace(configured)


def test_a_backlog_is_encoded_one_batch_ahead_and_every_list_is_exact(
    settings: Settings, default_encoder: TransformerEncoder
) -> None:
    abt, _ = sample_catalog()
    # Every 7th Abt offer: distinct real products (no identical titles tied at the K-th place).
    rows = list(read_catalog(abt, id_prefix="abt-"))[::7][:PRODUCTS]
    assert len(rows) == PRODUCTS
    publish(settings, [event(row.product_id, 1, row.product) for row in rows])  # before the worker starts
    encoded_before = default_encoder.items_encoded
    with RunningWorker(settings, default_encoder) as running:
        lists = ListStore.from_settings(settings)
        ids = [row.product_id for row in rows]
        wait_for(lambda: len(lists.read_lists(ids)) == PRODUCTS, 300, "every list")
        wait_for(lambda: group_lag(settings) == 0, 120, "the offsets to be committed")
        assert running.alive()
    stats = running.stats  # the worker stopped: every batch is accounted for
    assert stats.prefetched_batches > 0, "no batch was encoded ahead: the test proves nothing"
    assert stats.encoded == PRODUCTS
    # Every text went through the encoder once: in a prefetch or, for its misses, inline.
    assert default_encoder.items_encoded - encoded_before <= PRODUCTS

    report = run_verify(settings)
    assert report.products == PRODUCTS and report.lists == PRODUCTS
    assert report.overlap_at_k_min == 1.0, report.as_dict()
    assert report.missing_lists == report.orphan_lists == report.deleted_in_lists == 0
    assert report.score_errors == report.misordered_lists == report.rev_errors == 0
    assert report.output_mismatches == 0, report.as_dict()
