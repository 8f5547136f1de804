"""Options every producer of ours shares: compression, the Java client's partitioner, quiet logs."""

from __future__ import annotations

from typing import Any

from simstream.core.log_limit import kafka_logger
from simstream.schemas.settings import Settings, kafka_client_config

# murmur2 of the key bytes, like the Java client's default (and kafkajs's): a record keyed by a
# product_id lands in the same partition whichever of them writes it, so a tombstone or backfill
# from another service compacts our record. "_random": keyless records spread, as Java's do.
JAVA_COMPATIBLE_PARTITIONER = "murmur2_random"


def base_producer_config(settings: Settings) -> dict[str, Any]:
    """Shared producer options; ``kafka_extra`` can override compression and partitioner."""
    defaults = {"compression.type": settings.kafka_compression, "partitioner": JAVA_COMPATIBLE_PARTITIONER}
    return {**kafka_client_config(settings, defaults), "logger": kafka_logger()}
