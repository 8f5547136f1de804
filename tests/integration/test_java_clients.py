"""Our worker with Kafka's own Java clients: the records round-trip, and keys agree on partitions.

Kafka's Java console producer writes product events to the input topic; the real worker processes
them; the Java console consumer reads the lists back (gzip, our compression default). Every key must
sit in the same partition everywhere: where the Java producer put the input event, where our worker
put the key's lists, and where our own producer puts the same key on a third topic. Three partitions
and sixteen keys: a producer with another partitioner (librdkafka's default, CRC32) would disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from support.java_clients import console_consume, console_produce, tool_class_path
from support.streaming import RunningWorker, create_stream_topics, stream_settings, wait_for

from simstream.core.encoder import TransformerEncoder
from simstream.demo import sample_catalog
from simstream.producers.catalog import read_catalog
from simstream.producers.publish import make_producer, product_event
from simstream.schemas.codec import decode_similar_items, encode_event
from simstream.schemas.settings import Settings, kafka_client_config

pytestmark = pytest.mark.integration

PARTITIONS = 3
PRODUCTS = 16


@pytest.fixture(scope="module")
def tools() -> Path:
    return tool_class_path(Settings())


@pytest.fixture
def settings(kafka_bootstrap: str, redis_url: str, unique_name: str) -> Iterator[Settings]:
    configured = stream_settings(kafka_bootstrap, redis_url, unique_name, top_k=5, worker_id=f"{unique_name}-w1")
    create_stream_topics(configured, partitions=PARTITIONS)
    yield configured


def record_count(settings: Settings, topic: str) -> int:
    """Records on ``topic``: no transactions in at-least-once mode, so offsets count records."""
    probe = Consumer({**kafka_client_config(settings), "group.id": f"{topic}-count"})
    try:
        return sum(probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS))
    finally:
        probe.close()


def group_client_ids(settings: Settings) -> set[str]:
    admin = AdminClient(kafka_client_config(settings))
    described = admin.describe_consumer_groups([settings.group_id])[settings.group_id].result(10)
    return {member.client_id for member in described.members}


def test_java_clients_read_our_lists_and_agree_on_every_keys_partition(
    settings: Settings,
    tools: Path,
    default_encoder: TransformerEncoder,
    create_topic: Callable[..., str],
    unique_name: str,
) -> None:
    abt, _ = sample_catalog()
    rows = list(read_catalog(abt, id_prefix="abt-"))[:PRODUCTS]
    events = [product_event(row.product_id, 1, row.product) for row in rows]
    keys = {event.product_id for event in events}
    bootstrap = settings.kafka_bootstrap

    with RunningWorker(settings, default_encoder) as running:
        console_produce(
            tools, bootstrap, settings.input_topic, ((e.product_id, encode_event(e).decode()) for e in events)
        )
        wait_for(lambda: all(k in running.stats.emitted_ids for k in keys), 60, "a list for every Java-produced event")
        wait_for(lambda: len(running.worker._batcher) == 0, 30, "the batcher to drain")
        # The consumer-group view names the instance by its worker id, not librdkafka's "rdkafka".
        assert group_client_ids(settings) == {settings.worker_id}

    # Our producer (the one `simstream publish` uses) writes the same keys to a topic of its own.
    mirror = create_topic(f"{unique_name}-mirror", partitions=PARTITIONS)
    producer = make_producer(settings)
    for key in sorted(keys):
        producer.produce(mirror, key=key.encode(), value=b"{}")
    assert producer.flush(30) == 0

    java_input = console_consume(tools, bootstrap, settings.input_topic, PRODUCTS)
    java_lists = console_consume(tools, bootstrap, settings.output_topic, record_count(settings, settings.output_topic))
    java_mirror = console_consume(tools, bootstrap, mirror, PRODUCTS)

    # Round trip: what the Java producer wrote is what it reads back; every list decodes as similar-items.v1.
    assert {(r.key, orjson.loads(r.value)["event_id"]) for r in java_input} == {
        (e.product_id, str(e.event_id)) for e in events
    }
    for record in java_lists:
        listed = decode_similar_items(record.value.encode())
        assert listed.product_id == record.key
        assert len(listed.items) == settings.top_k
    assert {r.key for r in java_lists} == keys

    # Partitions: Java's producer, our worker's sink and our publish producer agree on every key.
    input_partition = {r.key: r.partition for r in java_input}
    assert {r.key: r.partition for r in java_mirror} == input_partition
    for record in java_lists:
        assert record.partition == input_partition[record.key], record.key
    assert len(set(input_partition.values())) > 1  # the keys really spread over partitions
