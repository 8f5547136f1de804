"""`simstream publish FILE`: a catalog file -> product events keyed by product_id (idempotent producer)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import KafkaError, Message, Producer
from tqdm import tqdm

from simstream.producers.catalog import CatalogFormat, CatalogRow, read_catalog
from simstream.producers.config import base_producer_config
from simstream.producers.topics import ensure_topics
from simstream.schemas.codec import encode_event
from simstream.schemas.events import EventType as ProductEventType
from simstream.schemas.events import ProductEvent
from simstream.schemas.settings import Settings

# What a catalog publish may say; deletes are not rows of a catalog file.
EventType = Literal["product.created", "product.updated"]


@dataclass(frozen=True, slots=True)
class PublishReport:
    sent: int
    failed: int
    invalid: int
    first_errors: tuple[str, ...]


def product_event(
    product_id: str,
    version: int,
    product_fields: dict[str, Any] | None,
    *,
    event_type: ProductEventType | None = None,
) -> ProductEvent:
    """A ``product.v1`` event stamped now with a fresh event_id; ValueError when it would not be valid.

    Without ``event_type``: a delete when there are no product fields, a create at version 1, an update
    after that.
    """
    if event_type is None:
        if product_fields is None:
            event_type = "product.deleted"
        else:
            event_type = "product.created" if version == 1 else "product.updated"
    return ProductEvent.model_validate(
        {
            "schema": "product.v1",
            "type": event_type,
            "event_id": str(uuid.uuid4()),
            "product_id": product_id,
            "version": version,
            "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "product": product_fields,
        }
    )


def event_for(row: CatalogRow, *, version: int, event_type: EventType) -> ProductEvent:
    """The event of a catalog row; the row's own version wins over the run's ``version``."""
    return product_event(
        row.product_id, row.version if row.version is not None else version, row.product, event_type=event_type
    )


def make_producer(settings: Settings) -> Producer:
    # Idempotent: broker-side dedup of retried sends, per-partition order kept.
    return Producer({**base_producer_config(settings), "enable.idempotence": True, "linger.ms": 20})


def publish_file(
    settings: Settings,
    path: Path,
    *,
    fmt: CatalogFormat | None = None,
    mapping: dict[str, str] | None = None,
    id_prefix: str = "",
    version: int | None = None,
    event_type: EventType = "product.created",
    topic: str | None = None,
    progress: bool = True,
) -> PublishReport:
    """Publish every row; rows that cannot become a valid event are counted as invalid, never sent."""
    # Without explicit versions, one publish run is one catalog revision: epoch milliseconds.
    run_version = version if version is not None else time.time_ns() // 1_000_000
    if topic is None:
        # With the worker's partition count: a broker would auto-create the topic with its own default.
        ensure_topics(settings)
    producer = make_producer(settings)
    failures: list[str] = []
    delivered = 0
    invalid = 0

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        nonlocal delivered
        if err is None:
            delivered += 1
        else:
            failures.append(str(err))

    rows = list(read_catalog(path, fmt=fmt, mapping=mapping, id_prefix=id_prefix))
    for row in tqdm(rows, desc=f"publish {path.name}", unit="event", disable=not progress):
        try:
            event = event_for(row, version=run_version, event_type=event_type)
        except ValueError as exc:
            invalid += 1
            failures.append(f"line {row.line}: {exc}")
            continue
        _produce(producer, topic or settings.input_topic, row.product_id, encode_event(event), on_delivery)
    producer.flush(60)
    errors = tuple(failures[:5])
    return PublishReport(sent=delivered, failed=len(rows) - invalid - delivered, invalid=invalid, first_errors=errors)


DeliveryCallback = Callable[[KafkaError | None, Message], None]


def _produce(producer: Producer, topic: str, key: str, value: bytes, on_delivery: DeliveryCallback) -> None:
    while True:
        try:
            producer.produce(topic, key=key.encode(), value=value, on_delivery=on_delivery)
            producer.poll(0)
            return
        except BufferError:
            # Local queue full: serve delivery reports to make room, then try again.
            producer.poll(0.5)
