"""A Pipeline over a test's private Redis namespace, built as a (re)started worker builds it."""

from __future__ import annotations

import time
from collections.abc import Sequence

from simstream.core.encoder import TransformerEncoder
from simstream.core.list_store import ListStore
from simstream.core.pipeline import BatchResult, Pipeline
from simstream.core.redis_client import make_redis_client
from simstream.core.similarity import SimilarityPolicy
from simstream.core.vector_store import RedisVectorStore
from simstream.schemas.events import ProductEvent
from simstream.schemas.settings import Settings


def pipeline_for(settings: Settings, encoder: TransformerEncoder) -> tuple[Pipeline, RedisVectorStore, ListStore]:
    """Its own clients and nothing remembered (a new ListStore has an empty decode memo)."""
    client = make_redis_client(settings)
    store = RedisVectorStore.from_settings(settings, client)
    store.ensure_index(encoder.dim, encoder.model_id)
    lists = ListStore.from_settings(settings, client)
    pipeline = Pipeline(
        encoder, store, lists, SimilarityPolicy.from_settings(settings), text_template=settings.text_template
    )
    return pipeline, store, lists


def process(pipeline: Pipeline, events: Sequence[ProductEvent]) -> BatchResult:
    """One batch through the pipeline (prepared, not committed)."""
    return pipeline.process([pipeline.prepare(e, time.time()) for e in events])


def commit_in_batches(pipeline: Pipeline, events: Sequence[ProductEvent], size: int) -> list[BatchResult]:
    """The events as batches of ``size``, each processed and its lists made current, as delivered."""
    results = []
    for start in range(0, len(events), size):
        result = process(pipeline, events[start : start + size])
        pipeline.commit(result)
        results.append(result)
    return results
