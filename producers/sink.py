"""Where a batch's results go: similar-item lists (and tombstones) to the output topic, bad records
to the dead-letter topic. Delivery is confirmed by :meth:`KafkaSink.flush` before offsets move."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from confluent_kafka import KafkaError, Message, Producer

from simstream.core.errors import SimstreamError
from simstream.core.list_store import StoredList
from simstream.producers.topics import DLQ_MAX_MESSAGE_BYTES
from simstream.schemas.codec import DecodeFailure
from simstream.schemas.settings import Settings, kafka_client_config


class DeliveryError(SimstreamError):
    """The broker did not acknowledge some records; the batch must be retried, offsets not committed."""


class SourceRecord(Protocol):
    """Coordinates of an input record (a confluent Message or a test double)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> str | bytes | None: ...
    def value(self) -> str | bytes | None: ...


class KafkaSink:
    def __init__(self, settings: Settings, producer: Producer | None = None) -> None:
        self._settings = settings
        self._producer = producer or Producer(
            {
                **kafka_client_config(settings),
                "enable.idempotence": True,
                "linger.ms": 5,
                "compression.type": "lz4",
                "message.max.bytes": DLQ_MAX_MESSAGE_BYTES,
            }
        )
        self._errors: list[str] = []

    def emit_lists(self, lists: Sequence[StoredList]) -> None:
        # The exact bytes that become current at similar:{id}: the topic and Redis never disagree.
        for stored in lists:
            self._produce(self._settings.output_topic, stored.product_id.encode(), stored.payload)

    def emit_tombstones(self, product_ids: Sequence[str]) -> None:
        # A null value on the compacted output topic: consumers drop the product's list.
        for product_id in product_ids:
            self._produce(self._settings.output_topic, product_id.encode(), None)

    def dead_letter(self, record: SourceRecord, failure: DecodeFailure) -> None:
        headers: list[tuple[str, str | bytes | None]] = [
            ("reason", failure.reason.encode()),
            ("detail", failure.detail.encode()),
            ("source.topic", (record.topic() or "").encode()),
            ("source.partition", str(record.partition()).encode()),
            ("source.offset", str(record.offset()).encode()),
        ]
        key, value = record.key(), record.value()
        self._produce(
            self._settings.dlq_topic,
            key.encode() if isinstance(key, str) else key,
            value.encode() if isinstance(value, str) else value,
            headers,
        )

    def flush(self, timeout_s: float = 30.0) -> None:
        remaining = self._producer.flush(timeout_s)
        errors, self._errors = self._errors, []
        if remaining:
            raise DeliveryError(f"{remaining} records still undelivered after {timeout_s:.0f} s")
        if errors:
            raise DeliveryError(f"{len(errors)} records not delivered, first: {errors[0]}")

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._errors.append(str(err))

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, headers=headers, on_delivery=self._on_delivery)
                self._producer.poll(0)
                return
            except BufferError:
                self._producer.poll(0.2)  # local queue full: serve delivery reports, then retry
