"""A first load (core/first_load) on the real stack with the real model.

A worker that starts on an empty index writes the backlog without list work and builds every list once
in bulk; the marker in Redis lets the next worker finish a load that a stopped one left pending; a
batch that wrote after the bulk pass read its counter makes the pass repeat; ``simstream load FILE``
writes a catalog file and builds its lists in bulk. Every result is checked by ``simstream verify``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from support.streaming import (
    RunningWorker,
    event,
    group_lag,
    publish,
    settled,
    stream_settings,
    wait_for,
)

from simstream.cli import main
from simstream.core.audit import Thresholds, threshold_failures
from simstream.core.encoder import TransformerEncoder
from simstream.core.first_load import FirstLoad
from simstream.core.list_store import ListStore
from simstream.core.namespace import clear_redis_namespace, namespace_fields
from simstream.core.redis_client import make_redis_client
from simstream.core.text import read_text_file
from simstream.demo import sample_catalog
from simstream.producers.catalog import read_catalog
from simstream.schemas.settings import Settings
from simstream.verify import run_verify

pytestmark = pytest.mark.integration

CATALOG = 40


@pytest.fixture
def settings(small_stream: Settings) -> Settings:
    return small_stream


def products(limit: int = CATALOG) -> list[tuple[str, dict[str, Any]]]:
    abt, buy = sample_catalog()
    rows = [*list(read_catalog(abt, id_prefix="abt-"))[::31], *list(read_catalog(buy, id_prefix="buy-"))[::31]]
    return [(row.product_id, row.product) for row in rows[:limit]]


def marker(settings: Settings) -> FirstLoad:
    return FirstLoad.from_settings(settings, make_redis_client(settings))


def verify_failures(settings: Settings) -> list[str]:
    """``simstream verify`` with its default limits, the output topic included; [] when exact."""
    return threshold_failures(run_verify(settings), Thresholds())


def test_a_worker_on_an_empty_index_builds_every_list_once_in_bulk_then_updates_go_incremental(
    settings: Settings, default_encoder: TransformerEncoder
) -> None:
    catalog = products()
    ids = [pid for pid, _ in catalog]
    lists = ListStore.from_settings(settings)
    with RunningWorker(settings, default_encoder) as running:
        publish(settings, [event(pid, 1, product) for pid, product in catalog])
        wait_for(lambda: settled(settings), 300, "the first load's lists")
        stats = running.stats
        assert stats.first_load_passes >= 1
        # No batch did list work: every list came from the bulk pass, each one emitted.
        assert stats.lists_emitted == stats.first_load_lists >= CATALOG
        assert all(pid in stats.emitted_ids for pid in ids)
        assert verify_failures(settings) == []

        passes = stats.first_load_passes
        target, product = catalog[0]
        before = lists.read_list(target)
        assert before is not None
        publish(settings, [event(target, 2, {**product, "title": "Completely different garden hose 50 ft"})])
        wait_for(lambda: (lists.read_list(target) or before).source_version == 2, 120, "the update's list")
        wait_for(lambda: settled(settings), 120, "the update's batch to be committed")
        assert running.alive()
        assert stats.first_load_passes == passes  # the catalog was loaded: the update went incremental
        assert stats.lists_emitted > stats.first_load_lists
    assert verify_failures(settings) == []


def test_a_first_load_left_pending_by_a_stopped_worker_is_finished_by_the_next_one(
    settings: Settings, default_encoder: TransformerEncoder
) -> None:
    catalog = products()
    ids = [pid for pid, _ in catalog]
    with RunningWorker(settings, default_encoder) as first:
        # This worker stops before its bulk pass, as a worker killed once its batches were committed.
        first.worker._finish_first_load = lambda: None  # type: ignore[method-assign]
        publish(settings, [event(pid, 1, product) for pid, product in catalog])
        wait_for(lambda: group_lag(settings) == 0, 300, "the backlog to be written and committed")
        assert first.alive()
    assert marker(settings).pending() is not None
    assert ListStore.from_settings(settings).read_lists(ids) == {}
    report = run_verify(settings)
    assert report.first_load_pending and report.missing_lists == CATALOG
    assert any("first load is pending" in failure for failure in threshold_failures(report, Thresholds()))

    with RunningWorker(settings, default_encoder) as second:
        wait_for(lambda: settled(settings), 120, "the next worker to finish the first load")
        assert second.stats.first_load_passes == 1 and second.stats.encoded == 0
    assert verify_failures(settings) == []


def test_a_batch_that_wrote_after_the_pass_read_the_counter_makes_the_pass_repeat(
    redis_url: str, unique_name: str
) -> None:
    settings = stream_settings("127.0.0.1:1", redis_url, unique_name)
    load = marker(settings)
    try:
        assert load.begin() and not load.begin()  # one marker, whoever starts on the empty index
        seen = load.pending()
        assert seen == 0
        load.note_writes()  # a deferring batch wrote while the pass read the catalog
        assert not load.finish(seen) and load.pending() == 1
        assert load.finish(1) and load.pending() is None
        load.note_writes()  # a batch that deferred and wrote after the marker went: another pass follows
        assert load.pending() == 1
    finally:
        clear_redis_namespace(settings)


def test_simstream_load_writes_a_catalog_file_and_builds_its_lists_in_bulk(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    abt, _ = sample_catalog()
    rows = list(csv.reader(io.StringIO(read_text_file(abt))))  # the file is not UTF-8: read as the loader does
    catalog = tmp_path / "catalog.csv"
    with catalog.open("w", newline="", encoding="utf-8") as target:
        csv.writer(target).writerows(rows[: CATALOG + 1])  # the header and CATALOG offers
    fields = [*namespace_fields("unused"), "kafka_bootstrap", "redis_url", "top_k", "vector_algorithm"]
    for field in fields:  # the command reads its settings from the environment, as a user's shell has them
        monkeypatch.setenv(f"SIMSTREAM_{field.upper()}", str(getattr(settings, field)))

    assert main(["load", str(catalog), "--id-prefix", "abt-", "--quiet"]) == 0
    shown = capsys.readouterr().out
    assert f"rows={CATALOG} invalid=0 written={CATALOG}" in shown
    assert f"lists: {CATALOG} built in bulk, {CATALOG} emitted" in shown
    assert marker(settings).pending() is None
    assert verify_failures(settings) == []
