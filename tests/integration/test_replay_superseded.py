"""The replay rule when the replayed event is not the batch's newest: a worker killed mid-batch, whose
restart reads the replay together with newer versions of the same products (core/pipeline.py).

The newer versions change only metadata (a price), so they move no vector themselves: only the replay
tells the pipeline that the killed run's list work (the pools its new products entered) may be lost."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import pytest
from support.streaming import event, stream_settings

from simstream.core.audit import Thresholds, threshold_failures
from simstream.core.encoder import TransformerEncoder
from simstream.core.list_store import ListStore
from simstream.core.namespace import clear_redis_namespace
from simstream.core.pipeline import BatchResult, Pipeline
from simstream.core.redis_client import make_redis_client
from simstream.core.similarity import SimilarityPolicy
from simstream.core.vector_store import RedisVectorStore
from simstream.demo import sample_catalog
from simstream.producers.catalog import read_catalog
from simstream.schemas.events import ProductEvent
from simstream.schemas.settings import Settings
from simstream.verify import run_verify

pytestmark = pytest.mark.integration

CATALOG = 60
NEW = 12  # created by the batch the kill interrupts


@pytest.fixture
def settings(redis_url: str, unique_name: str) -> Iterator[Settings]:
    made = stream_settings("127.0.0.1:1", redis_url, unique_name, vector_algorithm="FLAT")
    yield made
    clear_redis_namespace(made)


def worker_pipeline(settings: Settings, encoder: TransformerEncoder) -> Pipeline:
    """A pipeline as a (re)started worker builds it: its own clients, nothing remembered."""
    client = make_redis_client(settings)
    store = RedisVectorStore.from_settings(settings, client)
    store.ensure_index(encoder.dim, encoder.model_id)
    lists = ListStore.from_settings(settings, client)
    return Pipeline(
        encoder, store, lists, SimilarityPolicy.from_settings(settings), text_template=settings.text_template
    )


def run(pipeline: Pipeline, events: Sequence[ProductEvent]) -> BatchResult:
    return pipeline.process([pipeline.prepare(e, time.time()) for e in events])


@pytest.mark.parametrize("killed", ["after_prepare", "after_lists_current"])
def test_a_replay_superseded_in_its_batch_still_redoes_the_lost_list_work(
    settings: Settings, default_encoder: TransformerEncoder, killed: str
) -> None:
    abt, _ = sample_catalog()
    rows = list(read_catalog(abt, id_prefix="abt-"))[: CATALOG + NEW]
    products = {row.product_id: row.product for row in rows}
    ids = list(products)
    topic: dict[str, bytes] = {}  # the output topic's last committed value per key

    first = worker_pipeline(settings, default_encoder)
    for start in range(0, CATALOG, 20):
        result = run(first, [event(pid, 1, products[pid]) for pid in ids[start : start + 20]])
        first.commit(result)
        topic.update({s.product_id: s.payload for s in result.lists})

    # The killed batch: new products written and their pools prepared; its records never committed.
    created = [event(pid, 1, products[pid]) for pid in ids[CATALOG:]]
    lost = run(first, created)
    entered = {s.product_id for s in lost.lists} - set(ids[CATALOG:])
    assert entered, "the new products must enter lists of existing products for this test to mean anything"
    if killed == "after_lists_current":
        first.commit(lost)  # current in Redis, but the transaction with its records aborted

    # The restarted worker reads the replay and, in the same batch, a price change of each new product.
    repriced = [event(pid, 2, {**products[pid], "price": 1.0 + i}) for i, pid in enumerate(ids[CATALOG:])]
    restarted = worker_pipeline(settings, default_encoder)
    result = run(restarted, [*created, *repriced])
    restarted.commit(result)
    topic.update({s.product_id: s.payload for s in result.lists})

    report = run_verify(settings, check_output=False)
    assert threshold_failures(report, Thresholds()) == [], report.lowest_overlap
    current = ListStore.from_settings(settings).read_lists(ids)
    behind = sorted(pid for pid in ids if topic.get(pid) != current[pid].payload)
    assert behind == [], f"lists whose current version never reached the topic: {behind}"
