"""Encoding ahead: Pipeline.prefetch is only a cache for Pipeline.process, and the worker's Prefetcher
runs one at a time and never lets a failure through. Over fakes: the list work is not exercised."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from simstream.consumers.prefetch import Prefetcher
from simstream.core.pipeline import Inbound, Pipeline, Prefetched
from simstream.core.pool_refresh import Owner, RefreshOutcome
from simstream.core.similarity import SimilarityPolicy
from simstream.core.text import content_hash
from simstream.core.vector_store import ProductWrite, StoredState, UpsertResult
from simstream.producers.publish import product_event
from simstream.schemas.settings import Settings

MODEL = "fake-model@1"
DIM = 4


class CountingEncoder:
    def __init__(self) -> None:
        self.model_id = MODEL
        self.dim = DIM
        self.calls: list[list[str]] = []

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) for text in texts]

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        return np.stack([vector_of(text) for text in texts]) if texts else np.empty((0, DIM), np.float32)


def vector_of(text: str) -> npt.NDArray[np.float32]:
    seed = zlib.crc32(text.encode())
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


class FakeStore:
    """Version-fenced writes in a dict, the way the Lua scripts decide."""

    index_name = "idx"

    def __init__(self) -> None:
        self.stored: dict[str, StoredState] = {}
        self.writes: list[ProductWrite] = []

    def states(self, ids: Sequence[str]) -> dict[str, StoredState | None]:
        return {pid: self.stored.get(pid) for pid in ids}

    def upsert_results(self, writes: Sequence[ProductWrite]) -> list[UpsertResult]:
        outcomes = []
        for write in writes:
            state = self.stored.get(write.product_id)
            if state is not None and write.version <= state.version:
                outcomes.append(UpsertResult.STALE)
            elif write.embedding is None and (state is None or state.content_hash != write.content_hash):
                outcomes.append(UpsertResult.NEEDS_EMBEDDING)
            else:
                self.stored[write.product_id] = StoredState(write.version, write.content_hash, True, MODEL)
                self.writes.append(write)
                outcomes.append(UpsertResult.APPLIED)
        return outcomes

    def delete(self, items: Sequence[tuple[str, int]]) -> list[bool]:
        return [False for _ in items]


class FakeLists:
    client: Any = None
    keys: Any = None

    def read_lists(self, ids: Sequence[str]) -> dict[str, Any]:
        return {}


class NoLists:
    def read_owners(self, ids: Sequence[str]) -> dict[str, Owner]:
        return {}

    def refresh(self, moved: Mapping[str, Owner], gone: Sequence[str], **_: Any) -> RefreshOutcome:
        return RefreshOutcome()


def pipeline(encoder: CountingEncoder, store: FakeStore) -> Pipeline:
    built = Pipeline(
        encoder,
        store,  # type: ignore[arg-type]  # the part of VectorStore that process() uses
        FakeLists(),  # type: ignore[arg-type]
        SimilarityPolicy.from_settings(Settings()),
        text_template=Settings().text_template,
    )
    built._refresher = NoLists()  # type: ignore[assignment]
    return built


def inbound(built: Pipeline, product_id: str, version: int, title: str) -> Inbound:
    return built.prepare(product_event(product_id, version, {"title": title}), 0.0)


def test_process_encodes_only_what_the_prefetch_missed() -> None:
    encoder, store = CountingEncoder(), FakeStore()
    built = pipeline(encoder, store)
    batch = [inbound(built, f"sku-{i}", 1, f"Turntable model {i}") for i in range(4)]
    prefetched = built.prefetch(batch[:3])  # an older, smaller batch: sku-3 is a miss
    assert [len(texts) for texts in encoder.calls] == [3]

    result = built.process(batch, prefetched)
    assert encoder.calls[1:] == [[batch[3].text]]
    assert result.encoded == 4 and result.metadata_only == 0
    for write in store.writes:
        assert write.embedding is not None
        np.testing.assert_array_equal(write.embedding, vector_of(write.text))


def test_a_prefetch_is_only_a_cache_the_states_are_read_again() -> None:
    encoder, store = CountingEncoder(), FakeStore()
    built = pipeline(encoder, store)
    item = inbound(built, "sku-1", 2, "Sony turntable")
    prefetched = built.prefetch([item])
    # Meanwhile another worker stored the same content at version 1: only the metadata changes now.
    store.stored["sku-1"] = StoredState(1, content_hash(item.text or "", MODEL), True, MODEL)
    result = built.process([item], prefetched)
    assert result.metadata_only == 1 and result.encoded == 0
    assert store.writes[-1].embedding is None


def test_prefetch_skips_unchanged_content_stale_versions_and_deletes() -> None:
    encoder, store = CountingEncoder(), FakeStore()
    built = pipeline(encoder, store)
    same = inbound(built, "sku-same", 3, "Unchanged title")
    store.stored["sku-same"] = StoredState(2, content_hash(same.text or "", MODEL), True, MODEL)
    store.stored["sku-old"] = StoredState(5, "other", True, MODEL)
    batch = [
        same,
        inbound(built, "sku-old", 4, "An older revision"),
        built.prepare(product_event("sku-gone", 2, None), 0.0),
        inbound(built, "sku-new", 1, "Brand new"),
        inbound(built, "sku-twin", 1, "Brand new"),  # equal texts are encoded once
    ]
    prefetched = built.prefetch(batch)
    assert encoder.calls == [["Brand new"]]
    assert set(prefetched.vectors) == {content_hash("Brand new", MODEL)}


def test_the_prefetch_encoder_time_is_reported_with_the_batch() -> None:
    encoder, store = CountingEncoder(), FakeStore()
    built = pipeline(encoder, store)
    item = inbound(built, "sku-1", 1, "Sony turntable")
    ahead = Prefetched({content_hash(item.text or "", MODEL): vector_of(item.text or "")}, encode_seconds=1.5)
    result = built.process([item], ahead)
    assert encoder.calls == []
    assert result.encode_ahead_seconds == 1.5 and result.encode_seconds == 1.5


class GatedPipeline:
    """prefetch() blocks until released, or raises: what the worker's Prefetcher must cope with. Each
    event's vector is keyed by its text."""

    def __init__(self, fail: bool = False) -> None:
        self.gate = threading.Event()
        self.fail = fail
        self.running = 0
        self.most_running = 0
        self.chunks: list[list[str]] = []
        self.lock = threading.Lock()

    def prefetch(self, batch: Sequence[Inbound]) -> Prefetched:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.chunks.append([item.text or "" for item in batch])
        try:
            assert self.gate.wait(30), "never released"
            if self.fail:
                raise RuntimeError("this text breaks the encoder")
            return Prefetched({item.text or "": np.zeros(DIM, np.float32) for item in batch}, encode_seconds=1.0)
        finally:
            with self.lock:
                self.running -= 1


def events(*titles: str) -> list[Inbound]:
    return [Inbound(product_event(f"sku-{title}", 1, {"title": title}), title, 1, 0.0) for title in titles]


def test_what_was_polled_is_encoded_in_order_about_a_batch_ahead() -> None:
    gated = GatedPipeline()
    prefetcher = Prefetcher(gated, limit=3)
    polled = events("a", "b", "c", "d", "e", "f", "g")
    try:
        prefetcher.add(polled[:2])  # a chunk starts at once
        prefetcher.add(polled[2:])  # one chunk runs at a time: these wait
        gated.gate.set()
        taken = prefetcher.take(polled[:2])
        assert taken is not None and set(taken.vectors) == {"a", "b"} and taken.encode_seconds == 1.0
        taken = prefetcher.take(polled[2:4])  # the next chunk filled the room up to the limit, no more
        assert gated.chunks == [["a", "b"], ["c", "d", "e"]]
        assert taken is not None and set(taken.vectors) == {"c", "d", "e"}
        # c and d are taken, e is still ahead: room for two more.
        taken = prefetcher.take(polled[4:])
        assert gated.chunks[2:] == [["f", "g"]]
        assert taken is not None and {"e", "f", "g"} <= set(taken.vectors)  # the whole chunk of e too
        assert taken.encode_seconds == 1.0  # the chunk of c, d and e reported its time with c and d
    finally:
        prefetcher.close()
    assert gated.most_running == 1


def test_a_batch_never_polled_gets_nothing_and_what_came_before_it_is_forgotten() -> None:
    gated = GatedPipeline()
    gated.gate.set()
    prefetcher = Prefetcher(gated, limit=10)
    polled = events("a", "b", "c")
    try:
        prefetcher.add(polled)
        assert prefetcher.take(events("a")) is None  # an equal event, not one that was polled
        taken = prefetcher.take(polled[1:2])  # a, dropped before (a rewind), is forgotten with b
        assert taken is not None
        assert prefetcher.take(polled[:1]) is None
        taken = prefetcher.take(polled[2:])
        assert taken is not None and "c" in taken.vectors
    finally:
        prefetcher.close()


def test_a_failing_prefetch_is_dropped_and_never_more_than_one_runs() -> None:
    gated = GatedPipeline(fail=True)
    prefetcher = Prefetcher(gated, limit=1)
    polled = events("a", "b")
    try:
        prefetcher.add(polled)
        releaser = threading.Timer(0.05, gated.gate.set)
        releaser.start()
        assert prefetcher.take(polled[:1]) is None  # the failure is logged, not raised
        assert prefetcher.take(polled[1:]) is None
        releaser.join(30)
    finally:
        prefetcher.close()
    assert gated.most_running == 1 and gated.chunks == [["a"], ["b"]]


def test_discard_and_close_leave_nothing_running() -> None:
    gated = GatedPipeline()
    prefetcher = Prefetcher(gated, limit=4)
    polled = events("a", "b")
    prefetcher.add(polled)
    gated.gate.set()
    prefetcher.discard()
    assert prefetcher.take(polled) is None
    prefetcher.close()
    assert gated.running == 0
