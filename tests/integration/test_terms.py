"""The term-statistics snapshot (core/terms) on the real stack with the real model.

A first load counts the snapshot of the catalog it loads and scores every list with it; ``simstream
terms refresh`` switches to a new snapshot while a worker runs, and every list is rebuilt and emitted
once naming it; a refresh made while no worker runs is finished by the next worker; a batch that was
scoring with the old snapshot when it moved drops its lists and has the bulk pass run again.
``simstream verify`` scores with the current snapshot and passes after each step.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from support.streaming import RunningWorker, event, publish, settled, wait_for

from simstream.consumers.output_reader import read_last_records
from simstream.core.audit import Thresholds, threshold_failures
from simstream.core.encoder import TransformerEncoder
from simstream.core.first_load import FirstLoad
from simstream.core.hybrid import profile_tokens
from simstream.core.list_store import ListStore
from simstream.core.pipeline import Pipeline
from simstream.core.redis_client import make_redis_client
from simstream.core.redis_keys import RedisKeys
from simstream.core.similarity import SimilarityPolicy
from simstream.core.terms import TermsStore, TermStats
from simstream.core.vector_store import RedisVectorStore
from simstream.demo import sample_catalog
from simstream.producers.catalog import read_catalog
from simstream.schemas.settings import Settings
from simstream.terms_command import refresh_terms, terms_status
from simstream.verify import run_verify

pytestmark = pytest.mark.integration

CATALOG = 40


@pytest.fixture
def settings(small_stream: Settings) -> Settings:
    return small_stream


def products(limit: int, offset: int = 0) -> list[tuple[str, dict[str, Any]]]:
    abt, buy = sample_catalog()
    rows = [
        *list(read_catalog(abt, id_prefix="abt-"))[offset::29],
        *list(read_catalog(buy, id_prefix="buy-"))[offset::29],
    ]
    return [(row.product_id, row.product) for row in rows[:limit]]


def terms_store(settings: Settings) -> TermsStore:
    return TermsStore(make_redis_client(settings), RedisKeys(settings.redis_prefix))


def verify_failures(settings: Settings) -> list[str]:
    return threshold_failures(run_verify(settings), Thresholds())


def models_of_lists(settings: Settings, ids: list[str]) -> set[str]:
    return {stored.model for stored in ListStore.from_settings(settings).read_lists(ids).values()}


def models_on_topic(settings: Settings) -> set[str]:
    return {orjson.loads(value)["model"] for value in read_last_records(settings).values() if value is not None}


def test_a_first_load_scores_with_its_catalog_s_snapshot_and_a_refresh_rebuilds_every_list_while_streaming(
    settings: Settings, default_encoder: TransformerEncoder
) -> None:
    first, later = products(CATALOG), products(10, offset=7)
    ids = [pid for pid, _ in first + later]
    model = default_encoder.model_id
    with RunningWorker(settings, default_encoder) as running:
        publish(settings, [event(pid, 1, product) for pid, product in first])
        wait_for(lambda: settled(settings), 300, "the first load's lists")
        loaded = terms_store(settings).current()
        assert loaded is not None and loaded.documents == CATALOG
        assert models_of_lists(settings, ids[:CATALOG]) == {f"{model}+{loaded.version}"}
        assert verify_failures(settings) == []

        # The catalog grows incrementally: new lists are still scored with the loaded snapshot.
        publish(settings, [event(pid, 1, product) for pid, product in later])
        wait_for(lambda: settled(settings), 120, "the later products' lists")
        assert models_of_lists(settings, ids) == {f"{model}+{loaded.version}"}
        passes = running.stats.first_load_passes

        report = refresh_terms(settings, wait=True, timeout_s=300)
        assert report.switched and report.previous == loaded.version and report.documents == len(ids)
        assert report.version != loaded.version and report.rebuild_s is not None
        wait_for(lambda: settled(settings), 120, "the rebuilt lists to be committed")
        assert running.stats.first_load_passes == passes + 1
        assert running.alive()
    expected = f"{model}+{report.version}"
    assert models_of_lists(settings, ids) == {expected}
    assert models_on_topic(settings) == {expected}  # every list was emitted again, naming the snapshot
    assert verify_failures(settings) == []
    assert not refresh_terms(settings).switched  # nothing changed since: the same snapshot


def test_a_refresh_made_while_no_worker_runs_is_finished_by_the_next_worker(
    settings: Settings, default_encoder: TransformerEncoder
) -> None:
    catalog = products(CATALOG)
    ids = [pid for pid, _ in catalog]
    with RunningWorker(settings, default_encoder):
        publish(settings, [event(pid, 1, product) for pid, product in catalog[:30]])
        wait_for(lambda: settled(settings), 300, "the first load's lists")
        publish(settings, [event(pid, 1, product) for pid, product in catalog[30:]])
        wait_for(lambda: settled(settings), 120, "the later products' lists")
    report = refresh_terms(settings)  # no worker: the switch waits for the next one
    assert report.switched and report.rebuild_s is None
    status = terms_status(settings)
    assert status.current == report.version and status.rebuild_pending and status.products == CATALOG
    assert any("first load is pending" in failure for failure in verify_failures(settings))

    with RunningWorker(settings, default_encoder) as second:
        wait_for(lambda: settled(settings), 120, "the next worker to rebuild the lists")
        assert second.stats.first_load_passes == 1
    assert models_of_lists(settings, ids) == {f"{default_encoder.model_id}+{report.version}"}
    assert verify_failures(settings) == []


def test_a_batch_scoring_with_a_snapshot_that_moved_drops_its_lists_and_asks_for_a_rebuild(
    settings: Settings, default_encoder: TransformerEncoder
) -> None:
    client = make_redis_client(settings)
    store = RedisVectorStore.from_settings(settings, client)
    store.ensure_index(default_encoder.dim, default_encoder.model_id)
    marker = FirstLoad(client, store.keys)
    terms = TermsStore(client, store.keys)
    pipeline = Pipeline(
        default_encoder,
        store,
        ListStore.from_settings(settings, client),
        SimilarityPolicy.from_settings(settings),
        text_template=settings.text_template,
        first_load=marker,
        terms=terms,
    )
    catalog = products(12)
    now = time.time()
    first = pipeline.process([pipeline.prepare(event(pid, 1, p), now) for pid, p in catalog[:10]])
    assert first.lists and not first.deferred and pipeline.policy.terms is None
    pipeline.commit(first)

    # Another process switches the snapshot, and a bulk pass finishes before this pipeline's next batch.
    moved = TermStats.of([profile_tokens("a snapshot counted elsewhere")])
    terms.switch(moved)
    client.delete(store.keys.first_load)

    second = pipeline.process([pipeline.prepare(event(pid, 1, p), now) for pid, p in catalog[10:]])
    assert second.deferred and second.lists == []
    assert marker.pending() is not None  # the rebuild is asked for again: its pools may mix two snapshots
    assert pipeline.policy.terms is not None and pipeline.policy.terms.version == moved.version
