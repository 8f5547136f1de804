"""No record stops the worker: whatever a producer sends is applied or dead-lettered, and the rest goes on.

Events come from the exported JSON Schema itself (hypothesis-jsonschema), mutated on the contract's
edges, plus random bytes; they go through the real worker on the real stack.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support.schema_events import decoder_verdict, mutated_events, schema_events, schema_verdict
from support.streaming import (
    RunningWorker,
    create_stream_topics,
    event,
    publish,
    publish_raw,
    read_dead_letters,
    settled,
    stream_settings,
    wait_for,
)

from simstream.core.encoder import Encoder, TransformerEncoder
from simstream.core.namespace import clear_redis_namespace
from simstream.core.redis_client import make_redis_client
from simstream.core.vector_store import RedisVectorStore
from simstream.schemas.settings import Settings

pytestmark = pytest.mark.integration

Record = tuple[bytes | None, bytes | None]


class PoisonedEncoder:
    """The real encoder, except that it fails on any batch holding a text with ``POISON``: a stand-in
    for a bug or a tokenizer crash that only some records trigger."""

    def __init__(self, inner: Encoder) -> None:
        self._inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return self._inner.token_counts(texts)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if any("POISON" in text for text in texts):
            raise RuntimeError("this text breaks the encoder")
        return self._inner.encode(texts)


@contextlib.contextmanager
def private_world(kafka_bootstrap: str, redis_url: str, name: str) -> Iterator[Settings]:
    configured = stream_settings(kafka_bootstrap, redis_url, name, batch_max_wait_ms=300)
    create_stream_topics(configured, partitions=2)
    try:
        yield configured
    finally:
        clear_redis_namespace(configured)


def drained(settings: Settings) -> bool:
    return settled(settings)


def test_records_that_break_processing_are_dead_lettered_and_their_batch_goes_on(
    kafka_bootstrap: str, redis_url: str, unique_name: str, default_encoder: TransformerEncoder
) -> None:
    good = [event(f"sku-{i}", 1, {"title": f"Sony turntable model PS-{i:03d}"}) for i in range(30)]
    poison = [event(f"bad-{i}", 1, {"title": f"POISON {i}"}) for i in range(2)]
    with (
        private_world(kafka_bootstrap, redis_url, unique_name) as configured,
        RunningWorker(configured, PoisonedEncoder(default_encoder)) as running,
    ):
        publish(configured, [*good[:10], poison[0], *good[10:20], poison[1]])
        publish_raw(configured, [huge_version("sku-0", 2**53), huge_version("sku-1", 2**63, delete=True)])
        publish(configured, good[20:])
        wait_for(lambda: drained(configured), 180, "the input to drain")
        assert running.alive()
        store = RedisVectorStore.from_settings(configured, make_redis_client(configured))
        states = store.states([e.product_id for e in good + poison])
        assert all(states[e.product_id] is not None for e in good), "a good record of a failing batch was lost"
        assert all(states[e.product_id] is None for e in poison)
        assert running.stats.processing_errors == 2
        assert {states[f"sku-{i}"].version for i in range(2)} == {1}  # type: ignore[union-attr]
    dead = read_dead_letters(configured)
    assert sorted(h["reason"] for h in dead) == [
        "processing_error",
        "processing_error",
        "validation_error",
        "validation_error",
    ]
    assert sum("RuntimeError: this text breaks the encoder" in h["detail"] for h in dead) == 2


def huge_version(product_id: str, version: int, *, delete: bool = False) -> Record:
    """A record whose version Redis could not compare exactly: refused by the contract (it stopped
    the worker for good before the contract bounded it)."""
    payload: dict[str, Any] = {
        "schema": "product.v1",
        "type": "product.deleted" if delete else "product.updated",
        "event_id": "6f1c3d9e-0b7a-4c1e-9a55-1b2c3d4e5f60",
        "product_id": product_id,
        "version": version,
        "occurred_at": "2026-11-29T12:00:00Z",
    }
    if not delete:
        payload["product"] = {"title": "Sony turntable"}
    return product_id.encode(), json.dumps(payload).encode()


def generated_records() -> st.SearchStrategy[list[tuple[Record, dict[str, Any] | None]]]:
    """(key, value) records with the event they carry (None for random bytes)."""

    def as_record(payload: dict[str, Any]) -> tuple[Record, dict[str, Any]]:
        key = payload.get("product_id")
        key_bytes = key.encode("utf-8", "surrogatepass") if isinstance(key, str) and key else b"key"
        return (key_bytes, json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass")), payload

    events = st.one_of(schema_events(), mutated_events()).map(as_record)
    garbage = st.tuples(st.one_of(st.none(), st.binary(max_size=8)), st.binary(max_size=64)).map(lambda r: (r, None))
    return st.lists(st.one_of(events, events, garbage), min_size=5, max_size=12)


@dataclass(slots=True)
class Tally:
    """What the generated stream did so far (all examples of one test run share one worker)."""

    generated: int = 0
    applied: int = 0
    dead_lettered: int = 0


@pytest.fixture
def generated_stream(
    kafka_bootstrap: str, redis_url: str, unique_name: str, default_encoder: TransformerEncoder
) -> Iterator[tuple[Settings, RunningWorker, Tally]]:
    with (
        private_world(kafka_bootstrap, redis_url, unique_name) as configured,
        RunningWorker(configured, default_encoder) as running,
    ):
        tally = Tally()
        yield configured, running, tally
        print(f"property stream: {asdict(tally)}")


@settings(
    max_examples=int(os.environ.get("SIMSTREAM_PROPERTY_STREAMS", "8")),  # more for a longer run
    deadline=None,
    phases=[Phase.generate],  # each example streams through the real worker: no shrinking rounds
    suppress_health_check=list(HealthCheck),  # one worker serves every example (function-scoped fixture)
)
@given(records=generated_records())
def test_every_generated_record_is_applied_or_dead_lettered_and_the_worker_never_exits(
    generated_stream: tuple[Settings, RunningWorker, Tally], records: list[tuple[Record, dict[str, Any] | None]]
) -> None:
    configured, running, tally = generated_stream
    publish_raw(configured, [record for record, _ in records])
    tally.generated += len(records)
    wait_for(lambda: drained(configured) and running.stats.records_done == tally.generated, 120, "the records")
    assert running.alive()
    valid = [payload for _, payload in records if payload is not None and decoder_verdict(payload)]
    assert all(schema_verdict(p) for p in valid), "the decoder took an event the schema refuses"
    store = RedisVectorStore.from_settings(configured, make_redis_client(configured))
    states = store.states(sorted({p["product_id"] for p in valid}))
    # Applied: Redis holds it or something newer (an equal or older version changes nothing by contract).
    applied = [p for p in valid if (s := states[p["product_id"]]) is not None and s.version >= p["version"]]
    dead = len(read_dead_letters(configured)) - tally.dead_lettered
    assert len(applied) + dead == len(records), (len(applied), dead, len(records))
    tally.applied += len(applied)
    tally.dead_lettered += dead
