"""Create the topics the worker uses when they are missing (the output topic compacted)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from simstream.schemas.settings import Settings, kafka_client_config

# Dead letters keep the original bytes, and the oversized ones are exactly what lands there.
DLQ_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
DLQ_TOPIC_CONFIG = {"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)}


def ensure_topics(settings: Settings, *, partitions: int = 6, timeout_s: float = 30.0) -> None:
    admin = AdminClient(kafka_client_config(settings))
    wanted = [
        NewTopic(settings.input_topic, num_partitions=partitions, replication_factor=-1),
        NewTopic(
            settings.output_topic,
            num_partitions=partitions,
            replication_factor=-1,
            config={"cleanup.policy": "compact"},
        ),
        NewTopic(settings.dlq_topic, num_partitions=1, replication_factor=-1, config=DLQ_TOPIC_CONFIG),
    ]
    existing = admin.list_topics(timeout=timeout_s).topics
    missing = [topic for topic in wanted if topic.topic not in existing]
    if not missing:
        return
    for future in admin.create_topics(missing, operation_timeout=timeout_s).values():
        try:
            future.result(timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def partitions_led(settings: Settings, topics: list[str], *, timeout_s: float = 30.0) -> dict[int, int]:
    """How many partitions of these topics each broker leads now (by node id)."""
    metadata = AdminClient(kafka_client_config(settings)).list_topics(timeout=timeout_s)
    led: dict[int, int] = {}
    for name in topics:
        for partition in metadata.topics[name].partitions.values():
            led[partition.leader] = led.get(partition.leader, 0) + 1
    return led
