"""Run the real worker against the real stack, publish events, wait with bounded polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from contextlib import closing
from types import TracebackType
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

# Re-exported: the integration tests take it from here with the rest of their streaming helpers.
from simstream.consumers.group_lag import group_lag as group_lag
from simstream.consumers.http import start_server
from simstream.consumers.metrics import WorkerMetrics
from simstream.consumers.stats import WorkerStats
from simstream.consumers.worker import Worker, build_worker
from simstream.core.encoder import Encoder
from simstream.core.first_load import FirstLoad
from simstream.core.namespace import namespace_fields
from simstream.core.redis_client import make_redis_client
from simstream.producers.publish import product_event
from simstream.producers.topics import DLQ_TOPIC_CONFIG
from simstream.schemas.codec import encode_event
from simstream.schemas.events import EventType, ProductEvent
from simstream.schemas.settings import Settings, kafka_client_config


def stream_settings(kafka_bootstrap: str, redis_url: str, name: str, **overrides: Any) -> Settings:
    """Settings of one test's private world: its topics, group, index and key prefix."""
    values: dict[str, Any] = {
        "kafka_bootstrap": kafka_bootstrap,
        "redis_url": redis_url,
        **namespace_fields(name),
        "batch_max_wait_ms": 100,
    }
    values.update(overrides)
    return Settings(**values)


def create_stream_topics(settings: Settings, partitions: int = 3) -> None:
    admin = AdminClient(kafka_client_config(settings))
    topics = [
        # Room for the >1 MB garbage record of the dead-letter test: it must reach the worker.
        NewTopic(
            settings.input_topic,
            num_partitions=partitions,
            replication_factor=1,
            config={"max.message.bytes": "2097152"},
        ),
        NewTopic(
            settings.output_topic,
            num_partitions=partitions,
            replication_factor=1,
            config={"cleanup.policy": "compact"},
        ),
        NewTopic(settings.dlq_topic, num_partitions=1, replication_factor=1, config=DLQ_TOPIC_CONFIG),
    ]
    for future in admin.create_topics(topics, operation_timeout=30).values():
        future.result(30)
    wait_for(lambda: all(t.topic in admin.list_topics(timeout=10).topics for t in topics), 30, "topics to exist")


def settled(settings: Settings) -> bool:
    """Every input record committed and every list built: no first load still defers its lists
    (offsets of a first load's batches are committed before its lists are built in bulk)."""
    if group_lag(settings) != 0:
        return False
    with closing(make_redis_client(settings)) as client:  # polled: one short-lived connection per look
        return FirstLoad.from_settings(settings, client).pending() is None


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def event(
    product_id: str, version: int, product: dict[str, Any] | None = None, *, kind: EventType | None = None
) -> ProductEvent:
    """``product_event`` in the tests' short form: no product means a delete."""
    return product_event(product_id, version, product, event_type=kind)


def publish(settings: Settings, events: Iterable[ProductEvent]) -> int:
    return publish_raw(settings, ((e.product_id.encode(), encode_event(e)) for e in events))


def publish_raw(settings: Settings, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    producer = Producer(
        {**kafka_client_config(settings), "enable.idempotence": True, "linger.ms": 5, "message.max.bytes": 2097152}
    )
    count = 0
    for key, value in records:
        producer.produce(settings.input_topic, key=key, value=value)
        producer.poll(0)
        count += 1
    assert producer.flush(60) == 0, "records left undelivered"
    return count


def read_dead_letters(settings: Settings) -> list[dict[str, str]]:
    """The headers of every record of the dead-letter topic (reason, detail, source coordinates)."""
    consumer = Consumer({**kafka_client_config(settings), "group.id": "dlq-reader", "enable.auto.commit": False})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(settings.dlq_topic, 0), timeout=10)
        consumer.assign([TopicPartition(settings.dlq_topic, 0, 0)])
        found: list[dict[str, str]] = []
        deadline = time.monotonic() + 60
        while len(found) < high and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=2):
                assert message.error() is None
                found.append({k: v.decode() for k, v in (message.headers() or [])})
        return found
    finally:
        consumer.close()


class RunningWorker:
    """The real worker (real model, Kafka and Redis) in a thread of the test process."""

    def __init__(
        self,
        settings: Settings,
        encoder: Encoder | None = None,
        encoder_for: Callable[[Settings], Encoder] | None = None,
    ) -> None:
        self.stats = WorkerStats()
        self.metrics = WorkerMetrics()
        self.worker: Worker = build_worker(
            settings, stats=self.stats, encoder=encoder, metrics=self.metrics, encoder_for=encoder_for
        )
        # As in run_worker: /metrics and /healthz when settings.metrics_port is set (0: any free port).
        self.server = start_server(settings, self.metrics, model_loaded=lambda: True)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run(stop_when=self._stop.is_set)
        except BaseException as exc:  # surfaced in stop(): a crashed worker fails the test
            self._error = exc

    def __enter__(self) -> RunningWorker:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        if self.server is not None:
            self.server.close()
        assert not self._thread.is_alive(), "worker did not stop within 60 s"
        if self._error is not None:
            raise AssertionError(f"worker crashed: {self._error!r}") from self._error

    def alive(self) -> bool:
        return self._thread.is_alive()
