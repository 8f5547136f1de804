"""The real Kafka broker: consumer-group commits and transactions behave as the pipeline needs."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0  # generous: the first group join also creates __consumer_offsets


def _consumer(bootstrap: str, group: str, **extra: str) -> Consumer:
    config: dict[str, str | int | float | bool] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
    }
    config.update(extra)
    return Consumer(config)


def _consume(consumer: Consumer, count: int, *, stop: Callable[[Message], bool] | None = None) -> list[Message]:
    """Poll until count records (or one for which stop is true) arrived, within a bounded deadline."""
    received: list[Message] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(received) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            raise AssertionError(f"consumer error: {error}")
        received.append(message)
        if stop is not None and stop(message):
            break
    return received


def _produce(bootstrap: str, topic: str, values: list[str]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for index, value in enumerate(values):
        producer.produce(topic, key=f"k{index}".encode(), value=value.encode())
    assert producer.flush(30) == 0, "records still undelivered after 30 s"


def _values(messages: list[Message]) -> list[str]:
    return [(message.value() or b"").decode() for message in messages]


def test_group_resumes_after_the_committed_offset(
    kafka_bootstrap: str, create_topic: Callable[..., str], unique_name: str
) -> None:
    topic = create_topic(unique_name, 1)
    values = [f"v{index}" for index in range(10)]
    _produce(kafka_bootstrap, topic, values)

    first = _consumer(kafka_bootstrap, unique_name)
    first.subscribe([topic])
    head = _consume(first, 4)
    assert _values(head) == values[:4]
    first.commit(message=head[-1], asynchronous=False)  # commits offset + 1: the next record to read
    first.close()

    second = _consumer(kafka_bootstrap, unique_name)
    try:
        committed = second.committed([TopicPartition(topic, 0)], timeout=30)
        assert committed[0].offset == 4
        second.subscribe([topic])
        rest = _consume(second, 6)
    finally:
        second.close()
    assert [message.offset() for message in rest] == list(range(4, 10))
    assert _values(rest) == values[4:]


def test_read_committed_sees_committed_transactions_only(
    kafka_bootstrap: str, create_topic: Callable[..., str], unique_name: str
) -> None:
    topic = create_topic(unique_name, 1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{unique_name}-txn"})
    producer.init_transactions(30)

    def transaction(values: list[str], *, commit: bool) -> None:
        producer.begin_transaction()
        for value in values:
            producer.produce(topic, key=value.encode(), value=value.encode())
        if commit:
            producer.commit_transaction(30)
        else:
            producer.flush(30)  # the aborted records really reach the log before the abort marker
            producer.abort_transaction(30)

    transaction(["committed-1", "committed-2"], commit=True)
    transaction(["aborted-1", "aborted-2"], commit=False)
    transaction(["committed-3"], commit=True)

    def is_last(message: Message) -> bool:
        return message.value() == b"committed-3"

    committed_reader = _consumer(kafka_bootstrap, f"{unique_name}-rc", **{"isolation.level": "read_committed"})
    uncommitted_reader = _consumer(kafka_bootstrap, f"{unique_name}-ru", **{"isolation.level": "read_uncommitted"})
    try:
        committed_reader.subscribe([topic])
        uncommitted_reader.subscribe([topic])
        # Reading up to the last committed record proves the aborted ones before it were skipped, not late.
        seen_committed = _values(_consume(committed_reader, 10, stop=is_last))
        seen_uncommitted = _values(_consume(uncommitted_reader, 10, stop=is_last))
    finally:
        committed_reader.close()
        uncommitted_reader.close()
    assert seen_committed == ["committed-1", "committed-2", "committed-3"]
    # The aborted records are in the log: only the isolation level hides them.
    assert seen_uncommitted == ["committed-1", "committed-2", "aborted-1", "aborted-2", "committed-3"]
