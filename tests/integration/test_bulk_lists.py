"""core/bulk_lists on a real Redis with the real model: the lists a bulk load builds are the ones the
incremental path emits for the same catalog, exact by ``simstream verify``, emitted before they become
current, and not emitted again when nothing changed."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import pytest
from support.pipelines import commit_in_batches, pipeline_for
from support.streaming import event, stream_settings

from simstream.core.audit import Thresholds, threshold_failures
from simstream.core.bulk_lists import build_all_lists
from simstream.core.encoder import TransformerEncoder
from simstream.core.list_store import ListStore, StoredList
from simstream.core.namespace import clear_redis_namespace
from simstream.core.similarity import SimilarityPolicy
from simstream.demo import sample_catalog
from simstream.producers.catalog import read_catalog
from simstream.schemas.settings import Settings
from simstream.verify import run_verify

pytestmark = pytest.mark.integration

CATALOG = 90
SCORE_TOLERANCE = 1e-5  # Redis's float32 COSINE distance against numpy's float32 matrix product


def catalog_events() -> list:  # type: ignore[type-arg]
    abt, buy = sample_catalog()
    rows = [*list(read_catalog(abt, id_prefix="abt-"))[::23], *list(read_catalog(buy, id_prefix="buy-"))[::23]]
    return [event(row.product_id, 1, row.product, kind="product.created") for row in rows[:CATALOG]]


@pytest.fixture
def namespaces(redis_url: str, unique_name: str) -> Iterator[tuple[Settings, Settings]]:
    made = [
        stream_settings("127.0.0.1:1", redis_url, f"{unique_name}-{side}", top_k=8, rerank_candidates=12, pool_slack=4)
        for side in ("incremental", "bulk")
    ]
    yield made[0], made[1]
    for settings in made:
        clear_redis_namespace(settings)


def exact(settings: Settings) -> bool:
    """``simstream verify`` over every stored product: every list exact, nothing missing or stale."""
    return threshold_failures(run_verify(settings, check_output=False), Thresholds()) == []


def all_lists(lists: ListStore, ids: Sequence[str]) -> dict[str, StoredList]:
    return lists.read_lists(list(ids))


def test_a_bulk_load_builds_the_lists_the_incremental_path_emits(
    namespaces: tuple[Settings, Settings], default_encoder: TransformerEncoder
) -> None:
    incremental, bulk = namespaces
    events = catalog_events()
    ids = [e.product_id for e in events]

    # The incremental path: the catalog streamed in, batch by batch, each batch's lists delivered.
    pipeline, _, inc_lists = pipeline_for(incremental, default_encoder)
    commit_in_batches(pipeline, events, 16)

    # The bulk path: the same products written with no list work, then every list at once.
    pipeline, store, bulk_lists = pipeline_for(bulk, default_encoder)
    written = pipeline.process([pipeline.prepare(e, time.time()) for e in events], list_work=False)
    assert written.encoded == len(events) and not written.lists and not bulk_lists.read_lists(ids)
    delivered: list[str] = []

    def emit(chunk: Sequence[StoredList]) -> None:
        # Emitted before they become current: a crash here replays them instead of losing them.
        assert not bulk_lists.read_lists([s.product_id for s in chunk])
        delivered.extend(s.product_id for s in chunk)

    policy = SimilarityPolicy.from_settings(bulk)
    report = build_all_lists(store, bulk_lists, policy, default_encoder.model_id, emit=emit)
    assert report.products == len(ids) and report.emitted == len(ids) and sorted(delivered) == sorted(ids)
    assert report.rounds == 1 and report.conflicts == 0

    expected, built = all_lists(inc_lists, ids), all_lists(bulk_lists, ids)
    assert set(expected) == set(built) == set(ids)
    for pid in ids:
        want, got = expected[pid].items, built[pid].items
        assert [n.product_id for n in got] == [n.product_id for n in want], pid
        assert max(abs(a.score - b.score) for a, b in zip(got, want, strict=True)) <= SCORE_TOLERANCE, pid
    assert exact(bulk)

    # Nothing changed: the pools are stored again, no list is emitted.
    again = build_all_lists(store, bulk_lists, policy, default_encoder.model_id, emit=emit)
    assert again.products == len(ids) and again.emitted == 0 and again.unchanged == len(ids)
    assert all_lists(bulk_lists, ids) == built

    # A product changed behind the lists' back is picked up by the next bulk pass, exactly.
    edited = event(ids[0], 2, {**events[1].product.model_dump(), "title": "completely different speaker"})
    assert pipeline.process([pipeline.prepare(edited, time.time())], list_work=False).encoded == 1
    changed = build_all_lists(store, bulk_lists, policy, default_encoder.model_id)
    assert 1 <= changed.emitted < len(ids)
    assert exact(bulk)


def test_the_same_category_rule_holds_in_bulk(
    redis_url: str, unique_name: str, default_encoder: TransformerEncoder
) -> None:
    settings = stream_settings("127.0.0.1:1", redis_url, unique_name, top_k=5, same_category_only=True)
    try:
        pipeline, store, lists = pipeline_for(settings, default_encoder)
        events = catalog_events()[:40]
        for index, e in enumerate(events):  # two categories, and some products with none
            product = e.product.model_dump()
            product["category"] = ["", "Audio", "Video"][index % 3]
            events[index] = event(e.product_id, 1, product, kind="product.created")
        pipeline.process([pipeline.prepare(e, time.time()) for e in events], list_work=False)
        build_all_lists(store, lists, SimilarityPolicy.from_settings(settings), default_encoder.model_id)
        categories = {e.product_id: (e.product.category or "") for e in events}
        for pid, stored in lists.read_lists(list(categories)).items():
            if categories[pid]:
                assert {categories[n.product_id] for n in stored.items} == {categories[pid]}
        assert exact(settings)
    finally:
        clear_redis_namespace(settings)
