"""The exactly-once sink sorts librdkafka's transaction errors: retry in place, abort the batch, or die."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from simstream.producers.sink import DeliveryError, FatalKafkaError, KafkaSink, TransactionAbortedError
from simstream.schemas.settings import Settings


class FakeTransactionalProducer:
    """Records the transaction calls; ``commit_errors`` are raised by the next commit_transaction calls."""

    def __init__(self, commit_errors: list[KafkaError] | None = None) -> None:
        self.calls: list[str] = []
        self.commit_errors = list(commit_errors or [])

    def init_transactions(self, _timeout: float) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], _metadata: Any, _timeout: float) -> None:
        self.calls.append(f"offsets {[(tp.partition, tp.offset) for tp in offsets]}")

    def commit_transaction(self, _timeout: float) -> None:
        self.calls.append("commit")
        if self.commit_errors:
            raise KafkaException(self.commit_errors.pop(0))

    def abort_transaction(self, _timeout: float) -> None:
        self.calls.append("abort")

    def flush(self, _timeout: float) -> int:
        return 0


def sink_with(producer: FakeTransactionalProducer) -> KafkaSink:
    return KafkaSink(Settings(exactly_once=True, group_id="g"), producer=producer)  # type: ignore[arg-type]


def test_a_batch_is_begin_offsets_commit_and_abort_after_commit_is_a_no_op() -> None:
    producer = FakeTransactionalProducer()
    sink = sink_with(producer)
    assert sink.transactional_id is not None and sink.transactional_id.startswith("g-")
    sink.begin()
    sink.commit([TopicPartition("in", 0, 7)], object())
    sink.abort()
    assert producer.calls == ["init", "begin", "offsets [(0, 7)]", "commit"]


def test_a_retriable_commit_error_is_retried_in_place() -> None:
    producer = FakeTransactionalProducer([KafkaError(KafkaError._TIMED_OUT, "slow", retriable=True)])
    sink = sink_with(producer)
    sink.begin()
    sink.commit([TopicPartition("in", 0, 1)], object())
    assert producer.calls.count("commit") == 2 and "abort" not in producer.calls


def test_an_abortable_error_surfaces_as_retryable_and_abort_ends_the_transaction() -> None:
    producer = FakeTransactionalProducer([KafkaError(KafkaError._STATE, "abortable", txn_requires_abort=True)])
    sink = sink_with(producer)
    sink.begin()
    with pytest.raises(TransactionAbortedError) as caught:
        sink.commit([TopicPartition("in", 0, 1)], object())
    assert isinstance(caught.value, DeliveryError)  # the worker's RETRYABLE covers it
    sink.abort()
    sink.begin()
    assert producer.calls[-2:] == ["abort", "begin"]


def test_a_fenced_producer_is_fatal() -> None:
    producer = FakeTransactionalProducer([KafkaError(KafkaError._FENCED, "fenced", fatal=True)])
    sink = sink_with(producer)
    sink.begin()
    with pytest.raises(FatalKafkaError, match="fenced"):
        sink.commit([TopicPartition("in", 0, 1)], object())
