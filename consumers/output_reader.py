"""The output topic's last record per key, as ``simstream verify`` compares it with Redis.

Reads every partition from the beginning up to where it ends now, outside any consumer group: the
partitions are assigned, not subscribed, and no offset is ever committed. ``read_committed`` hides
records of aborted (or still open) transactions, as a storefront consumer would see the topic.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from simstream.core.errors import SimstreamError
from simstream.core.log_limit import kafka_logger
from simstream.schemas.settings import Settings, kafka_client_config

# Messages per consume() call: one call drains a partition's fetch buffer.
CONSUME_BATCH = 1000
POLL_TIMEOUT_S = 0.5


class OutputReadError(SimstreamError):
    """The output topic cannot be read to its end (missing, unreachable, or too slow)."""


def reader_config(settings: Settings) -> dict[str, Any]:
    return {
        **kafka_client_config(settings),
        "logger": kafka_logger(),
        # librdkafka wants a group id even for assign(); a fresh one that never commits leaves no trace.
        "group.id": f"simstream-verify-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    }


def read_last_records(
    settings: Settings, topic: str | None = None, *, timeout_s: float = 60.0
) -> dict[str, bytes | None]:
    """``product_id -> value`` of the last record per key (``None`` for a tombstone) on ``topic``
    (default: the output topic), read up to each partition's end as of the call."""
    name = topic or settings.output_topic
    deadline = time.monotonic() + timeout_s
    consumer = Consumer(reader_config(settings))
    try:
        return _read(consumer, name, deadline, timeout_s)
    except KafkaException as exc:
        raise OutputReadError(f"cannot read topic {name!r}: {exc}") from exc
    finally:
        consumer.close()


def _read(consumer: Consumer, topic: str, deadline: float, timeout_s: float) -> dict[str, bytes | None]:
    partitions = _partitions(consumer, topic, timeout_s)
    # The end of each partition now; records produced later are not waited for.
    ends: dict[int, int] = {}
    for number in partitions:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, number), timeout=max(0.1, deadline - time.monotonic()), cached=False
        )
        if high > low:
            ends[number] = high
    if not ends:
        return {}
    consumer.assign([TopicPartition(topic, number, OFFSET_BEGINNING) for number in ends])
    last: dict[str, bytes | None] = {}
    pending = set(ends)
    while pending:
        if time.monotonic() >= deadline:
            raise OutputReadError(
                f"topic {topic!r}: partitions {sorted(pending)} not read to the end in {timeout_s:.0f} s"
            )
        for message in consumer.consume(num_messages=CONSUME_BATCH, timeout=POLL_TIMEOUT_S):
            partition, offset = message.partition(), message.offset()
            error = message.error()
            if error is not None:
                # End of what read_committed lets us see: below the high watermark only when a
                # transaction is still open, whose records are not part of the topic yet.
                if error.code() == KafkaError._PARTITION_EOF and partition is not None:
                    pending.discard(partition)
                    continue
                raise KafkaException(error)
            _keep(last, message)
            if partition is not None and offset is not None and offset >= ends[partition] - 1:
                pending.discard(partition)
    return last


def _partitions(consumer: Consumer, topic: str, timeout_s: float) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if metadata is None or metadata.error is not None:
        reason = "unknown" if metadata is None else metadata.error.str()
        raise OutputReadError(f"topic {topic!r} cannot be read: {reason}")
    return sorted(metadata.partitions)


def _keep(last: dict[str, bytes | None], message: Message) -> None:
    key = message.key()
    if key is None:
        return  # not a simstream record: every list and tombstone is keyed by product_id
    value = message.value()
    text_key = key.decode("utf-8", errors="replace") if isinstance(key, bytes) else key
    last[text_key] = value.encode() if isinstance(value, str) else value
