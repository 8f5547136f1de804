"""The replay rule (core/pipeline.py) redoes the list work a killed batch lost, wherever it stopped:
after PREPARE (pools changed, lists not current) or after the lists became current (their records
aborted with the transaction). Each test ends with every list exact in Redis and on the topic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from support.pipelines import commit_in_batches, pipeline_for, process
from support.streaming import event

from simstream.chaos import abt_buy_products
from simstream.core.audit import Thresholds, threshold_failures
from simstream.core.encoder import TransformerEncoder
from simstream.core.list_store import ListStore
from simstream.core.pipeline import BatchResult, Pipeline
from simstream.schemas.events import ProductEvent
from simstream.schemas.settings import Settings
from simstream.verify import run_verify

pytestmark = pytest.mark.integration

CATALOG = 60
NEW = 12  # created by the batch the kill interrupts


Topic = dict[str, bytes | None]  # the output topic's last committed value per key (None: a tombstone)
KILLED = ["after_prepare", "after_lists_current"]
EXACT = Thresholds(min_overlap_mean=1.0, min_overlap_min=1.0)  # every list, not most


def delivered(topic: Topic, result: BatchResult) -> None:
    topic.update({s.product_id: s.payload for s in result.lists})
    topic.update(dict.fromkeys(result.tombstones))


def load(pipeline: Pipeline, products: Mapping[str, dict[str, Any]], ids: Sequence[str], topic: Topic) -> None:
    for result in commit_in_batches(pipeline, [event(pid, 1, products[pid]) for pid in ids], 20):
        delivered(topic, result)


def killed_batch(pipeline: Pipeline, events: Sequence[ProductEvent], killed: str) -> BatchResult:
    """A batch processed by a worker killed before its records were committed."""
    lost = process(pipeline, events)
    if killed == "after_lists_current":
        pipeline.commit(lost)  # current in Redis, but the transaction with its records aborted
    return lost


def assert_exact_and_delivered(settings: Settings, ids: Sequence[str], topic: Topic) -> None:
    report = run_verify(settings, check_output=False)
    assert threshold_failures(report, EXACT) == [], (report.lowest_overlap, report.examples)
    current = ListStore.from_settings(settings).read_lists(ids)
    behind = sorted(pid for pid in ids if topic.get(pid, b"") != (s.payload if (s := current.get(pid)) else None))
    assert behind == [], f"lists whose current version (or tombstone) never reached the topic: {behind}"


@pytest.mark.parametrize("killed", KILLED)
def test_a_replay_superseded_in_its_batch_still_redoes_the_lost_list_work(
    small_pools: Settings, default_encoder: TransformerEncoder, killed: str
) -> None:
    settings = small_pools
    products = dict(abt_buy_products(CATALOG + NEW))
    ids = list(products)
    topic: Topic = {}
    first = pipeline_for(settings, default_encoder)[0]
    load(first, products, ids[:CATALOG], topic)

    # The killed batch creates products that enter lists of existing products.
    created = [event(pid, 1, products[pid]) for pid in ids[CATALOG:]]
    lost = killed_batch(first, created, killed)
    assert {s.product_id for s in lost.lists} - set(ids[CATALOG:]), "no existing list changed: a test of nothing"

    # The restarted worker reads the replay and, in the same batch, a price change of each new product:
    # those move no vector, so only the replay tells that the pools the new products entered may be behind.
    repriced = [event(pid, 2, {**products[pid], "price": 1.0 + i}) for i, pid in enumerate(ids[CATALOG:])]
    restarted = pipeline_for(settings, default_encoder)[0]
    result = process(restarted, [*created, *repriced])
    restarted.commit(result)
    delivered(topic, result)
    assert_exact_and_delivered(settings, ids, topic)


@pytest.mark.parametrize("recreated", [False, True], ids=["deleted", "deleted-then-recreated"])
@pytest.mark.parametrize("killed", KILLED)
def test_a_replayed_delete_redoes_the_lists_that_dropped_the_product(
    small_pools: Settings, default_encoder: TransformerEncoder, killed: str, recreated: bool
) -> None:
    settings = small_pools
    products = dict(abt_buy_products(CATALOG + NEW))
    ids = list(products)
    topic: Topic = {}
    first = pipeline_for(settings, default_encoder)[0]
    load(first, products, ids, topic)

    # The killed batch deletes products that sit in other lists: their pools drop them (rev: empties).
    deletes = [event(pid, 2) for pid in ids[:NEW]]
    lost = killed_batch(first, deletes, killed)
    assert {s.product_id for s in lost.lists} - set(ids[:NEW]), "no other list changed: a test of nothing"

    replayed = list(deletes)
    if recreated:  # and the restart reads them again at once, as other products (other vectors)
        replayed += [event(pid, 3, products[other]) for pid, other in zip(ids[:NEW], ids[-NEW:], strict=True)]
    restarted = pipeline_for(settings, default_encoder)[0]
    result = process(restarted, replayed)
    restarted.commit(result)
    delivered(topic, result)
    assert_exact_and_delivered(settings, ids, topic)
