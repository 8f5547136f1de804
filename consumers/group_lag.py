"""How far a consumer group is behind its input topic, seen from outside the group."""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaException, TopicPartition

from simstream.core.log_limit import kafka_logger
from simstream.schemas.settings import Settings, kafka_client_config


def group_lag(settings: Settings) -> int:
    """Input records not yet committed by ``settings.group_id`` (its work still to do), committed
    transactionally or not; -1 while the broker answers with errors (restarting: not known yet)."""
    # A probe with the group's id only reads its committed offsets: it never subscribes, so never joins.
    probe = Consumer(
        {
            **kafka_client_config(settings),
            "logger": kafka_logger(),
            "group.id": settings.group_id,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        metadata = probe.list_topics(settings.input_topic, timeout=10).topics[settings.input_topic]
        partitions = [TopicPartition(settings.input_topic, p) for p in metadata.partitions]
        lag = 0
        for committed in probe.committed(partitions, timeout=10):
            # read_committed: the high mark is the last stable offset; transaction markers count as offsets.
            _, high = probe.get_watermark_offsets(committed, timeout=10, cached=False)
            lag += max(0, high - max(committed.offset, 0))
        return lag
    except (KafkaException, KeyError):
        return -1
    finally:
        probe.close()
