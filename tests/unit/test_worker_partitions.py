"""The worker's partition bookkeeping around retries, over a fake consumer (the real-broker paths are
covered by the chaos scenarios: broker restart, Redis outage, 1-3-1 scaling)."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition
from support.fake_records import FakeMessage

from simstream.consumers.worker import Worker, record_age
from simstream.producers.topics import KafkaAccessError
from simstream.schemas.settings import Settings


class FakeConsumer:
    def __init__(self, messages: list[Any] | None = None) -> None:
        self.paused: set[tuple[str, int]] = set()
        self.seeks: list[tuple[str, int, int]] = []
        self.messages = list(messages or [])

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {(tp.topic, tp.partition) for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {(tp.topic, tp.partition) for tp in partitions}

    def poll(self, timeout: float) -> Any:
        return self.messages.pop(0) if self.messages else None

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append((partition.topic, partition.partition, partition.offset))


def bare_worker(consumer: FakeConsumer) -> Worker:
    worker = Worker.__new__(Worker)  # only the partition bookkeeping is exercised
    worker._consumer = consumer  # type: ignore[assignment]
    worker._backing_off = False
    worker._position = None
    return worker


def test_a_partition_given_back_is_resumed_even_if_it_was_paused_before() -> None:
    consumer = FakeConsumer()
    worker = bare_worker(consumer)
    consumer.paused = {("products", 0), ("products", 1)}  # paused by a retry, then revoked
    worker._on_assign(consumer, [TopicPartition("products", 0)])  # type: ignore[arg-type]
    assert consumer.paused == {("products", 1)}


def test_a_partition_assigned_during_a_retry_wait_stays_paused() -> None:
    consumer = FakeConsumer()
    worker = bare_worker(consumer)
    worker._backing_off = True
    worker._on_assign(consumer, [TopicPartition("products", 2)])  # type: ignore[arg-type]
    assert consumer.paused == {("products", 2)}


def test_a_message_read_while_waiting_is_rewound_not_dropped() -> None:
    consumer = FakeConsumer([FakeMessage("products", 3, 41)])
    worker = bare_worker(consumer)
    worker._wait(0.05)
    assert consumer.seeks == [("products", 3, 41)]


class ErrorMessage(FakeMessage):
    def __init__(self, code: int) -> None:
        super().__init__("products", 0, -1)
        self._code = code

    def error(self) -> Any:
        return KafkaError(self._code, "denied by ACL")


class ServedSink:
    def __init__(self) -> None:
        self.served = 0

    def serve(self) -> None:
        self.served += 1


class ErrorConsumer(FakeConsumer):
    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        return self.messages

    def assignment(self) -> list[TopicPartition]:
        return []


@pytest.mark.parametrize("code", [KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED])
def test_a_missing_right_on_the_group_or_topic_is_an_access_error_not_a_retry(code: int) -> None:
    sink = ServedSink()
    worker = Worker(
        Settings(),
        pipeline=None,  # type: ignore[arg-type]  # never reached: no record gets through
        sink=sink,  # type: ignore[arg-type]
        consumer=ErrorConsumer([ErrorMessage(code)]),  # type: ignore[arg-type]
    )
    with pytest.raises(KafkaAccessError, match="not authorised"):
        worker._poll_once()
    assert sink.served == 1  # the producer's queued log lines and reports are served every loop


class QueuedConsumer(FakeConsumer):
    """Records already fetched: poll hands out the first, consume the rest it is asked for."""

    def __init__(self, messages: list[Any]) -> None:
        super().__init__(messages)
        self.consumed: list[tuple[int, float]] = []

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        self.consumed.append((num_messages, timeout))
        taken, self.messages = self.messages[:num_messages], self.messages[num_messages:]
        return taken


def test_a_poll_waits_for_the_first_record_only_then_takes_what_is_there() -> None:
    """consume(n, timeout) waits for n records or the whole timeout: at low load that was a latency floor."""
    records = [FakeMessage("t", 0, offset) for offset in range(5)]
    consumer = QueuedConsumer(records)
    worker = Worker(
        Settings(poll_max_records=3),
        pipeline=None,  # type: ignore[arg-type]  # _receive never reaches it
        sink=ServedSink(),  # type: ignore[arg-type]
        consumer=consumer,  # type: ignore[arg-type]
    )
    assert worker._receive(0.5) == records[:3]
    assert consumer.consumed == [(2, 0)]
    assert worker._receive(0.5) == records[3:]
    assert worker._receive(0.5) == []


def test_a_records_age_comes_from_its_timestamp_and_is_never_negative() -> None:
    class Stamped:
        def __init__(self, ms: int) -> None:
            self.ms = ms

        def timestamp(self) -> tuple[int, int]:
            return (1, self.ms)

    assert record_age(Stamped(9_000), now=10.0) == pytest.approx(1.0)  # type: ignore[arg-type]
    assert record_age(Stamped(11_000), now=10.0) == 0.0  # type: ignore[arg-type]  # a clock ahead of ours
    assert record_age(Stamped(-1), now=10.0) == 0.0  # type: ignore[arg-type]  # no timestamp
