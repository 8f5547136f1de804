"""The worker polls between the round trips of a batch's list work: what arrives meanwhile is batched and
encoded ahead, and a partition revoked by such a poll is not committed by the batch in flight. Over a
fake consumer and pipeline (the real-broker paths run in tests/integration/test_prefetch.py and chaos)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
from confluent_kafka import TopicPartition
from support.fake_records import FakeMessage

from simstream.consumers.worker import Worker
from simstream.core.pipeline import BatchResult, Inbound, Prefetched
from simstream.producers.publish import product_event
from simstream.schemas.codec import encode_event
from simstream.schemas.settings import Settings

TOPIC = "products"


class Record(FakeMessage):
    """A product event of ``sku-{partition}-{offset}``, as the worker decodes it."""

    def __init__(self, partition: int, offset: int) -> None:
        super().__init__(TOPIC, partition, offset)
        self._value = encode_event(product_event(self._sku(), 1, {"title": f"Lamp {offset}"}))

    def _sku(self) -> str:
        return f"sku-{self.partition()}-{self.offset()}"

    def key(self) -> bytes:
        return self._sku().encode()

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, int(time.time() * 1000))


class Consumer:
    """Hands out ``arrivals`` one list per call (poll takes the first record of its list); ``on_consume``
    runs inside consume(), where a real consumer serves rebalance callbacks."""

    def __init__(self, arrivals: list[list[Record]], partitions: Sequence[int] = (0, 1)) -> None:
        self.arrivals = arrivals
        self.owned = [TopicPartition(TOPIC, p) for p in partitions]
        self.committed: list[list[tuple[int, int]]] = []
        self.on_consume: Callable[[], None] = lambda: None

    def poll(self, timeout: float) -> Record | None:
        if not self.arrivals or not self.arrivals[0]:
            if self.arrivals:
                self.arrivals.pop(0)
            return None
        return self.arrivals[0].pop(0)

    def consume(self, num_messages: int, timeout: float) -> list[Record]:
        self.on_consume()
        if not self.arrivals:
            return []
        taken = self.arrivals.pop(0)
        return taken

    def assignment(self) -> list[TopicPartition]:
        return list(self.owned)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.committed.append(sorted((tp.partition, tp.offset) for tp in offsets))

    def pause(self, partitions: list[TopicPartition]) -> None: ...
    def resume(self, partitions: list[TopicPartition]) -> None: ...


class Sink:
    transactional = False

    def __init__(self) -> None:
        self.emitted: list[str] = []

    def serve(self) -> None: ...
    def begin(self) -> None: ...
    def flush(self, timeout_s: float = 30.0) -> None: ...
    def abort(self) -> None: ...
    def dead_letter(self, record: Any, failure: Any) -> None: ...
    def emit_tombstones(self, product_ids: Sequence[str]) -> None: ...

    def emit_lists(self, lists: Sequence[Any]) -> None:
        self.emitted.extend(stored.product_id for stored in lists)


class Pipeline:
    """Calls ``between`` once per batch, as the list work does after each round trip."""

    generations = None
    first_load = None

    def __init__(self, prefetches_expected: int = 0) -> None:
        self.processed: list[tuple[list[str], set[str]]] = []  # (the batch's products, those prefetched)
        self.prefetched: list[list[str]] = []
        self.started = threading.Condition()
        # Each batch waits after between() until this many prefetches started (what was polled there is
        # being encoded while the batch is applied), then records which had.
        self.prefetches_expected = prefetches_expected
        self.prefetched_by_then: list[list[list[str]]] = []

    def prepare(self, event: Any, event_time: float) -> Inbound:
        return Inbound(event, event.product.title, 2, event_time)

    def prefetch(self, batch: Sequence[Inbound]) -> Prefetched:
        with self.started:
            self.prefetched.append([item.event.product_id for item in batch])
            self.started.notify_all()
        return Prefetched({item.event.product_id: np.zeros(2, np.float32) for item in batch}, 0.01)

    def process(
        self, batch: Sequence[Inbound], prefetched: Prefetched | None = None, *, between: Callable[[], None]
    ) -> BatchResult:
        ids = [item.event.product_id for item in batch]
        self.processed.append((ids, set(ids) & set(prefetched.vectors if prefetched else ())))
        between()
        with self.started:
            self.started.wait_for(lambda: len(self.prefetched) >= self.prefetches_expected, timeout=10)
            self.prefetched_by_then.append(list(self.prefetched))
        lists = [SimpleNamespace(product_id=pid) for pid in ids]  # one list emitted per product
        return BatchResult(lists=lists, event_times={pid: time.time() for pid in ids})  # type: ignore[arg-type]

    def commit(self, result: BatchResult) -> None: ...


def worker(consumer: Consumer, pipeline: Pipeline, sink: Sink) -> Worker:
    settings = Settings(batch_max_items=4, batch_max_wait_ms=0, poll_max_records=4)
    return Worker(settings, pipeline, sink, consumer=consumer)  # type: ignore[arg-type]


def test_records_that_arrive_while_a_batch_is_applied_are_encoded_ahead_of_their_batch() -> None:
    first = [Record(0, offset) for offset in range(2)]
    meanwhile = [Record(0, offset) for offset in range(2, 5)]
    consumer = Consumer([first, meanwhile])  # the first poll (poll, then consume), then between
    pipeline = Pipeline(prefetches_expected=2)
    sink = Sink()
    polling = worker(consumer, pipeline, sink)
    polling._poll_once()  # applies the first two; the other three arrive during their list work
    polling._poll_once()
    assert [ids for ids, _ in pipeline.processed] == [["sku-0-0", "sku-0-1"], ["sku-0-2", "sku-0-3", "sku-0-4"]]
    # The first batch was encoded when it was polled; the second while the first was applied.
    ahead = [["sku-0-0", "sku-0-1"], ["sku-0-2", "sku-0-3", "sku-0-4"]]
    assert pipeline.prefetched_by_then[0] == ahead == pipeline.prefetched
    assert pipeline.processed[1][1] == {"sku-0-2", "sku-0-3", "sku-0-4"}
    assert consumer.committed == [[(0, 2)], [(0, 5)]]
    assert polling.stats.prefetched_batches == 2


def test_a_partition_revoked_during_a_batch_is_left_to_its_new_owner() -> None:
    batch = [Record(0, 0), Record(1, 0), Record(0, 1), Record(1, 1)]
    consumer = Consumer([batch, []])
    pipeline = Pipeline()
    sink = Sink()
    polling = worker(consumer, pipeline, sink)

    def revoke_partition_1() -> None:  # what the real consumer's rebalance callback does in a poll
        if consumer.owned[1:] and pipeline.processed:  # while the batch is applied
            consumer.owned = consumer.owned[:1]
            polling._on_revoke(consumer, [TopicPartition(TOPIC, 1)])  # type: ignore[arg-type]

    consumer.on_consume = revoke_partition_1
    polling._poll_once()
    # Applied again without partition 1's records, before anything was emitted or committed.
    assert [ids for ids, _ in pipeline.processed] == [
        ["sku-0-0", "sku-1-0", "sku-0-1", "sku-1-1"],
        ["sku-0-0", "sku-0-1"],
    ]
    assert sink.emitted == ["sku-0-0", "sku-0-1"] and consumer.committed == [[(0, 2)]]
