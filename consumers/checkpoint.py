"""The commit order of one batch, for both delivery modes, in one place.

1. the batch's records produced: dead letters, lists, tombstones (in exactly-once mode inside a
   transaction begun here);
2. flush: the broker acknowledged every record (a failure raises, and nothing below happens);
3. the delivered lists made current in Redis (:meth:`Pipeline.commit`): a crash before this point
   replays the batch instead of leaving a list current that no reader ever got;
4. the batch's next input offsets recorded in Redis (:meth:`RedisPosition.applied`);
5. the offsets committed: the consumer's ``commit`` (at-least-once), or sent into the transaction and
   the transaction committed (exactly-once, :meth:`KafkaSink.commit`); then remembered as committed.

Any exception leaves the offsets uncommitted: the worker aborts the transaction (if any) and retries,
splits or replays the batch. Redis and Kafka cannot commit atomically; the replay rule of
core/pipeline.py covers a transaction that aborts after step 3.

A first load's lists (core/first_load) have no offsets: :meth:`Checkpoint.deliver_lists` does steps 1
and 2 (and commits the transaction), and core/bulk_lists makes them current after it returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Consumer, TopicPartition

from simstream.core.list_store import StoredList
from simstream.core.pipeline import BatchResult
from simstream.producers.sink import DeliveryError, SourceRecord
from simstream.schemas.codec import DecodeFailure

log = logging.getLogger("simstream.worker")


class Output(Protocol):
    """What the checkpoint needs from the producer side (producers/sink.py ``KafkaSink``)."""

    @property
    def transactional(self) -> bool: ...

    def begin(self) -> None: ...
    def dead_letter(self, record: SourceRecord, failure: DecodeFailure) -> None: ...
    def emit_lists(self, lists: Sequence[StoredList]) -> None: ...
    def emit_tombstones(self, product_ids: Sequence[str]) -> None: ...
    def flush(self, timeout_s: float = ...) -> None: ...
    def commit(self, offsets: Sequence[TopicPartition], group_metadata: Any) -> None: ...
    def commit_records(self) -> None: ...
    def abort(self) -> None: ...


class Offsets(Protocol):
    """What the checkpoint needs from the consumer: commit offsets, or hand the group to a transaction."""

    def commit_offsets(self, offsets: Sequence[TopicPartition]) -> None: ...
    def group_metadata(self) -> Any: ...


class ListCommitter(Protocol):
    def commit(self, result: BatchResult) -> None: ...


class Position(Protocol):
    """consumers/redis_position.py ``RedisPosition``: where Redis is in the input topic."""

    def applied(self, offsets: Sequence[TopicPartition]) -> None: ...
    def committed(self, offsets: Sequence[TopicPartition]) -> None: ...


@dataclass(frozen=True, slots=True)
class BatchOutput:
    """What one processed batch commits: its records, the lists they make current, its next offsets.

    Dead letters travel here rather than being produced while the batch is processed, so a batch that
    fails and is split or retried does not send them twice."""

    dead_letters: Sequence[tuple[SourceRecord, DecodeFailure]]
    result: BatchResult | None  # None: nothing went through the pipeline (dead letters only)
    offsets: Sequence[TopicPartition]


@dataclass(frozen=True, slots=True)
class Committed:
    delivered_at: float  # epoch seconds when the broker had acknowledged the batch's records
    lists_seconds: float  # making the delivered lists current in Redis (Redis time, for metrics)


class Checkpoint:
    def __init__(self, sink: Output, consumer: Offsets, lists: ListCommitter, position: Position | None) -> None:
        self._sink = sink
        self._consumer = consumer
        self._lists = lists
        self._position = position

    def use_lists(self, lists: ListCommitter) -> None:
        """Make lists current through ``lists`` from now on (a pipeline rebuilt for new generations)."""
        self._lists = lists

    def commit(self, output: BatchOutput) -> Committed:
        """Deliver the batch's records, make its lists current, commit its offsets (in that order)."""
        sink, result = self._sink, output.result
        sink.begin()
        for record, failure in output.dead_letters:
            sink.dead_letter(record, failure)
        if result is not None:
            sink.emit_lists(result.lists)
            sink.emit_tombstones(result.tombstones)
        sink.flush()
        delivered_at, flushed = time.time(), time.perf_counter()
        if result is not None:
            self._lists.commit(result)
        lists_seconds = time.perf_counter() - flushed
        if self._position is not None:
            self._position.applied(output.offsets)
        if sink.transactional:
            sink.commit(output.offsets, self._consumer.group_metadata())
        else:
            self._consumer.commit_offsets(output.offsets)
        if self._position is not None:
            self._position.committed(output.offsets)
        return Committed(delivered_at, lists_seconds)

    def deliver_lists(self, lists: Sequence[StoredList]) -> None:
        """Lists with no input offsets of their own (a first load's bulk pass, core/first_load): produced,
        flushed, and in exactly-once mode committed in a transaction, before the caller makes them current."""
        self._sink.begin()
        self._sink.emit_lists(lists)
        self._sink.commit_records()

    def abort(self) -> None:
        """After a failed batch: abort its open transaction, if any (its records never become visible).
        A failing abort is logged only: the batch's retry aborts again or begins afresh."""
        try:
            self._sink.abort()
        except DeliveryError as exc:
            log.warning("abort_transaction failed, retrying with the batch: %s", exc)


class ConsumerOffsets:
    """:class:`Offsets` over a confluent_kafka consumer: a synchronous commit, the group's metadata."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer

    def commit_offsets(self, offsets: Sequence[TopicPartition]) -> None:
        self._consumer.commit(offsets=list(offsets), asynchronous=False)

    def group_metadata(self) -> Any:
        return self._consumer.consumer_group_metadata()
