"""Prometheus metrics of one worker, kept in the worker's own registry.

A per-worker :class:`CollectorRegistry` (never prometheus_client's global one) lets several workers
live in one process (tests, benchmarks) without their series colliding. The worker thread writes;
the HTTP thread only reads through ``generate_latest``, which prometheus_client makes thread-safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, get_args

from confluent_kafka import KafkaException, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from simstream.core.pipeline import BatchResult
from simstream.schemas.codec import DecodeReason

log = logging.getLogger("simstream.metrics")

NAMESPACE = "simstream"
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
BATCH_TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768)
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Event time (the Kafka record timestamp) to the list's delivery: the number the product owner asks about.
FRESHNESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


@dataclass(frozen=True, slots=True)
class BatchObservation:
    """What the worker measured around one batch it processed and committed."""

    records: int  # every record of the batch, dead letters included
    tokens: int  # the batcher's token count of the batch's events
    dead_letter_reasons: Sequence[str]
    result: BatchResult | None  # None when the batch held only dead letters
    redis_seconds: float  # pipeline time minus encoder time, plus making the lists current
    delivered_at: float  # epoch seconds when the producer confirmed the batch's lists


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        registry = self.registry

        def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
            return Counter(name, documentation, labels, namespace=NAMESPACE, registry=registry)

        def histogram(name: str, documentation: str, buckets: Sequence[float]) -> Histogram:
            return Histogram(name, documentation, namespace=NAMESPACE, registry=registry, buckets=buckets)

        self.records_in = counter("records_in_total", "Input records consumed (before decoding)")
        self.lists_emitted = counter("lists_emitted_total", "Similar-item lists delivered to the output topic")
        self.tombstones = counter("tombstones_total", "Tombstones delivered for deleted products")
        self.dead_letters = counter("dead_letters_total", "Records sent to the dead-letter topic", ["reason"])
        self.stale = counter("stale_total", "Events older than (or equal to) what Redis already held")
        self.encoded = counter("encoded_total", "Products whose text went through the encoder")
        self.metadata_only = counter("metadata_only_total", "Products updated without re-embedding")
        self.retries = counter("retries_total", "Batch attempts that failed with a retryable error")
        self.batch_size = histogram("batch_size", "Records per processed batch", BATCH_SIZE_BUCKETS)
        self.batch_tokens = histogram("batch_tokens", "Tokens per processed batch", BATCH_TOKEN_BUCKETS)
        self.encode_seconds = histogram("encode_seconds", "Encoder time per batch", SECONDS_BUCKETS)
        self.redis_seconds = histogram(
            "redis_seconds", "Pipeline time outside the encoder (mostly Redis calls) per batch", SECONDS_BUCKETS
        )
        self.freshness_seconds = histogram(
            "freshness_seconds", "Event time to the delivery of the product's list or tombstone", FRESHNESS_BUCKETS
        )
        self.consumer_lag = Gauge(
            "consumer_lag",
            "High watermark minus the consumer's position, per assigned input partition",
            ["partition"],
            namespace=NAMESPACE,
            registry=registry,
        )
        # Every known reason exists from the start at 0, so rate() and alerts see the series before the first one.
        for reason in get_args(DecodeReason):
            self.dead_letters.labels(reason=reason)
        self._lag_partitions: set[int] = set()

    def count_record_in(self) -> None:
        self.records_in.inc()

    def count_retry(self) -> None:
        self.retries.inc()

    def count_first_load_lists(self, emitted: int) -> None:
        """Lists a first load's bulk pass delivered (they belong to no batch)."""
        self.lists_emitted.inc(emitted)

    def observe_batch(self, batch: BatchObservation) -> None:
        self.batch_size.observe(batch.records)
        for reason in batch.dead_letter_reasons:
            self.dead_letters.labels(reason=reason).inc()
        result = batch.result
        if result is None:
            return
        self.batch_tokens.observe(batch.tokens)
        self.lists_emitted.inc(len(result.lists))
        self.tombstones.inc(len(result.tombstones))
        self.stale.inc(result.stale)
        self.encoded.inc(result.encoded)
        self.metadata_only.inc(result.metadata_only)
        if result.encoded:
            self.encode_seconds.observe(result.encode_seconds)
        self.redis_seconds.observe(max(0.0, batch.redis_seconds))
        for event_time in result.event_times.values():
            # Producer and worker clocks may disagree a little: a negative age is clock skew, not speed.
            self.freshness_seconds.observe(max(0.0, batch.delivered_at - event_time))

    def set_lag(self, lags: Mapping[int, int]) -> None:
        """Replace the lag series: partitions missing from ``lags`` are no longer ours and disappear."""
        for partition, lag in lags.items():
            self.consumer_lag.labels(partition=str(partition)).set(lag)
        self.forget_partitions(self._lag_partitions - set(lags))
        self._lag_partitions = set(lags)

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        for partition in set(partitions) & self._lag_partitions:
            self.consumer_lag.remove(str(partition))
            self._lag_partitions.discard(partition)


class PositionedConsumer(Protocol):
    """The part of a confluent Consumer that lag needs (a fake in unit tests)."""

    def assignment(self) -> list[TopicPartition]: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...
    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]: ...


def partition_lags(consumer: PositionedConsumer) -> dict[int, int]:
    """Lag per assigned partition from local state only: no broker round trip in the poll loop.

    The high watermark is the one cached from the latest fetch response; a partition with no
    position yet (nothing consumed) or no fetch yet has no known lag and is left out.
    """
    assigned = consumer.assignment()
    if not assigned:
        return {}
    lags: dict[int, int] = {}
    for position in consumer.position(assigned):
        if position.offset < 0:
            continue
        _, high = consumer.get_watermark_offsets(position, cached=True)
        if high < 0:
            continue
        lags[position.partition] = max(0, high - position.offset)
    return lags


class LagSampler:
    """Refreshes the lag gauge at most every ``interval_s``: lag moves slowly, the poll loop is hot."""

    def __init__(self, metrics: WorkerMetrics, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._interval_s = interval_s
        self._clock = clock
        self._next_at: float | None = None

    def maybe_sample(self, consumer: PositionedConsumer) -> None:
        now = self._clock()
        if self._next_at is not None and now < self._next_at:
            return
        self._next_at = now + self._interval_s
        try:
            lags = partition_lags(consumer)
        except KafkaException as exc:  # a metric must never stop the worker; keep the last values
            log.debug("consumer lag not sampled: %s", exc)
            return
        self._metrics.set_lag(lags)
