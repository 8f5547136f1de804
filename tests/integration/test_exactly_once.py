"""Exactly-once output and the replay rule: a batch whose Redis lists became current but whose output
was lost (an aborted transaction, a crash before the offset commit) is redone in full."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from support.streaming import RunningWorker, create_stream_topics, event, group_lag, publish, stream_settings, wait_for

from simstream.core.encoder import TransformerEncoder
from simstream.core.errors import StoreError, StoreUnavailableError
from simstream.core.list_store import ListStore
from simstream.core.pipeline import BatchResult
from simstream.core.redis_client import make_redis_client
from simstream.core.vector_store import RedisVectorStore
from simstream.demo import sample_catalog
from simstream.producers.catalog import read_catalog
from simstream.schemas.settings import Settings
from simstream.topic_records import duplicated_lists, read_all
from simstream.verify import run_verify

pytestmark = pytest.mark.integration

PRODUCTS = 30


@pytest.fixture(params=["eos", "alo"])
def settings(
    request: pytest.FixtureRequest, kafka_bootstrap: str, redis_url: str, unique_name: str
) -> Iterator[Settings]:
    configured = stream_settings(
        kafka_bootstrap,
        redis_url,
        unique_name,
        exactly_once=request.param == "eos",
        vector_algorithm="FLAT",
        batch_max_items=PRODUCTS,  # one batch, usually: the failure hits lists of many products
        batch_max_wait_ms=500,
        # The per-batch commit path under test: a first load would defer these lists to its bulk pass.
        first_load_bulk=False,
    )
    create_stream_topics(configured)
    yield configured
    client = make_redis_client(configured)
    with contextlib.suppress(StoreError):
        RedisVectorStore.from_settings(configured, client).drop_index(delete_documents=True)
    for key in client.scan_iter(match=f"{configured.redis_prefix}*", count=1000):
        client.delete(key)


def test_lists_made_current_before_a_failed_commit_are_emitted_again_and_aborted_records_stay_invisible(
    settings: Settings, default_encoder: TransformerEncoder
) -> None:
    abt, _ = sample_catalog()
    products = [(row.product_id, row.product) for row in read_catalog(abt, id_prefix="abt-")][:PRODUCTS]
    failures: list[int] = []
    with RunningWorker(settings, default_encoder) as running:
        pipeline = running.worker._pipeline
        real_commit = pipeline.commit

        def commit_then_fail_once(result: BatchResult) -> None:
            real_commit(result)  # Redis is current now; the batch's output is not (yet) committed
            if not failures and result.lists:
                failures.append(len(result.lists))
                raise StoreUnavailableError("injected: the connection dropped after the list writes")

        pipeline.commit = commit_then_fail_once  # type: ignore[method-assign]
        publish(settings, [event(pid, 1, product) for pid, product in products])
        lists = ListStore.from_settings(settings)
        wait_for(lambda: len(lists.read_lists([pid for pid, _ in products])) == PRODUCTS, 300, "every list")
        wait_for(lambda: group_lag(settings) == 0, 120, "the offsets to be committed")
        assert failures and running.stats.retries >= 1

    committed = read_all(settings, settings.output_topic, committed=True)
    everything = read_all(settings, settings.output_topic, committed=False)
    report = run_verify(settings)
    # Every current list reached the committed topic, byte for byte, though the first attempt's did not count.
    assert report.output_mismatches == 0 and report.missing_lists == 0
    if settings.exactly_once:
        assert duplicated_lists(committed) == 0
        # The aborted attempt's records are in the log, but a read_committed reader never sees them.
        assert len(everything) >= len(committed) + failures[0]
    else:
        assert len(committed) == len(everything)
