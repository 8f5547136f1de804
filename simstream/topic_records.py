"""Every record of a topic as a reader sees it (read_committed or not), and the duplicate count.

Used by ``simstream chaos`` and the exactly-once tests: unlike ``output_reader`` (last record per key),
this keeps each record, so a list emitted twice shows up twice.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from simstream.consumers.output_reader import OutputReadError
from simstream.schemas.codec import decode_similar_items
from simstream.schemas.settings import Settings, kafka_client_config


@dataclass(frozen=True, slots=True)
class TopicRecord:
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None  # the producer's create time (None when the record carries none)


def read_all(settings: Settings, topic: str, *, committed: bool = True, timeout_s: float = 60.0) -> list[TopicRecord]:
    """Every record up to each partition's end as of the call; aborted ones only with ``committed=False``."""
    consumer = Consumer(
        {
            **kafka_client_config(settings),
            "group.id": f"simstream-records-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if committed else "read_uncommitted",
        }
    )
    deadline = time.monotonic() + timeout_s
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise OutputReadError(f"topic {topic!r} cannot be read")
        ends = {}
        for number in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, number), timeout=timeout_s, cached=False)
            if high > low:
                ends[number] = high
        if not ends:
            return []
        consumer.assign([TopicPartition(topic, number, OFFSET_BEGINNING) for number in ends])
        found: list[TopicRecord] = []
        pending = set(ends)
        while pending:
            if time.monotonic() > deadline:
                raise OutputReadError(f"topic {topic!r} not read to its end in {timeout_s:.0f} s")
            for message in consumer.consume(1000, timeout=0.5):
                error, partition, offset = message.error(), message.partition(), message.offset()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF and partition is not None:
                        pending.discard(partition)
                        continue
                    raise OutputReadError(f"topic {topic!r}: {error}")
                key, value = message.key(), message.value()
                kind, timestamp = message.timestamp()
                found.append(
                    TopicRecord(
                        key.encode() if isinstance(key, str) else key,
                        value.encode() if isinstance(value, str) else value,
                        None if kind == TIMESTAMP_NOT_AVAILABLE else timestamp,
                    )
                )
                if partition is not None and offset is not None and offset >= ends[partition] - 1:
                    pending.discard(partition)
        return found
    except KafkaException as exc:
        raise OutputReadError(f"cannot read topic {topic!r}: {exc}") from exc
    finally:
        consumer.close()


def longest_gap_s(records: Iterable[TopicRecord]) -> float:
    """The longest time between consecutive records by create time: how long a reader saw nothing new."""
    times = sorted(record.timestamp_ms for record in records if record.timestamp_ms is not None)
    return max((later - earlier for earlier, later in itertools.pairwise(times)), default=0) / 1000


def duplicated_lists(records: Iterable[TopicRecord]) -> int:
    """List records beyond one per (product, list_version); tombstones are not counted."""
    seen = Counter(
        (record.key, decode_similar_items(record.value).list_version) for record in records if record.value is not None
    )
    return sum(count - 1 for count in seen.values())
