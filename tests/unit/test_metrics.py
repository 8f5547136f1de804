"""The worker's Prometheus metrics and consumer-lag sampling, with fake consumers and a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import get_args

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from prometheus_client import generate_latest
from support.scrape import parse_samples, value

from simstream.consumers.metrics import BatchObservation, LagSampler, WorkerMetrics, partition_lags
from simstream.core.list_store import StoredList
from simstream.core.pipeline import BatchResult
from simstream.schemas.codec import DecodeReason

OFFSET_INVALID = -1001  # librdkafka's "no offset yet"


def samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return parse_samples(generate_latest(metrics.registry).decode())


def stored_list(product_id: str) -> StoredList:
    return StoredList(product_id, 1, 1, "model@rev", datetime.now(UTC), (), b"{}")


def observation(result: BatchResult | None, *, records: int = 3, reasons: tuple[str, ...] = ()) -> BatchObservation:
    return BatchObservation(
        records=records,
        tokens=120,
        dead_letter_reasons=reasons,
        result=result,
        redis_seconds=0.02,
        delivered_at=1000.0,
    )


def test_a_batch_moves_every_counter_and_histogram_by_what_it_held() -> None:
    metrics = WorkerMetrics()
    result = BatchResult(
        lists=[stored_list("a"), stored_list("b")],
        tombstones=["c"],
        event_times={"a": 999.0, "c": 990.0},
        stale=1,
        encoded=2,
        metadata_only=1,
        deleted=1,
        encode_seconds=0.3,
    )
    metrics.observe_batch(observation(result, records=5, reasons=("invalid_json",)))
    got = samples(metrics)
    assert value(got, "simstream_lists_emitted_total") == 2
    assert value(got, "simstream_tombstones_total") == 1
    assert value(got, "simstream_stale_total") == 1
    assert value(got, "simstream_encoded_total") == 2
    assert value(got, "simstream_metadata_only_total") == 1
    assert value(got, "simstream_dead_letters_total", reason="invalid_json") == 1
    assert value(got, "simstream_batch_size_sum") == 5
    assert value(got, "simstream_batch_tokens_sum") == 120
    assert value(got, "simstream_encode_seconds_sum") == pytest.approx(0.3)
    assert value(got, "simstream_redis_seconds_sum") == pytest.approx(0.02)
    # Ages 1 s and 10 s: one falls in the 1 s bucket, both within 10 s.
    assert value(got, "simstream_freshness_seconds_count") == 2
    assert value(got, "simstream_freshness_seconds_bucket", le="1.0") == 1
    assert value(got, "simstream_freshness_seconds_bucket", le="10.0") == 2


def test_every_dead_letter_reason_is_exported_at_zero_before_the_first_one() -> None:
    got = samples(WorkerMetrics())
    for reason in get_args(DecodeReason):
        assert value(got, "simstream_dead_letters_total", reason=reason) == 0


def test_a_batch_of_dead_letters_only_counts_them_and_touches_no_pipeline_histogram() -> None:
    metrics = WorkerMetrics()
    metrics.observe_batch(observation(None, records=2, reasons=("invalid_json", "empty_key")))
    got = samples(metrics)
    assert value(got, "simstream_dead_letters_total", reason="invalid_json") == 1
    assert value(got, "simstream_dead_letters_total", reason="empty_key") == 1
    assert value(got, "simstream_batch_size_count") == 1
    assert value(got, "simstream_batch_tokens_count") == 0
    assert value(got, "simstream_redis_seconds_count") == 0


def test_encode_seconds_is_observed_only_for_batches_that_encoded() -> None:
    metrics = WorkerMetrics()
    metrics.observe_batch(observation(BatchResult(metadata_only=3)))
    assert value(samples(metrics), "simstream_encode_seconds_count") == 0


def test_an_event_time_in_the_future_counts_as_zero_age_not_negative() -> None:
    metrics = WorkerMetrics()
    metrics.observe_batch(observation(BatchResult(event_times={"a": 1002.5})))
    got = samples(metrics)
    assert value(got, "simstream_freshness_seconds_sum") == 0
    assert value(got, "simstream_freshness_seconds_bucket", le="0.05") == 1


def test_two_workers_in_one_process_keep_separate_series() -> None:
    first, second = WorkerMetrics(), WorkerMetrics()
    first.count_record_in()
    first.count_retry()
    assert value(samples(first), "simstream_records_in_total") == 1
    assert value(samples(first), "simstream_retries_total") == 1
    assert value(samples(second), "simstream_records_in_total") == 0


@dataclass
class FakeConsumer:
    """Positions and cached high watermarks per partition of one topic."""

    positions: dict[int, int]
    highs: dict[int, int]
    fail: bool = False
    calls: list[str] = field(default_factory=list)

    def assignment(self) -> list[TopicPartition]:
        self.calls.append("assignment")
        if self.fail:
            raise KafkaException(KafkaError(KafkaError._STATE))
        return [TopicPartition("products", p) for p in sorted(self.positions)]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.positions[tp.partition]) for tp in partitions]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        assert cached, "the poll loop must not wait for a broker round trip"
        return 0, self.highs[partition.partition]


def test_lag_is_the_high_watermark_minus_the_position_and_unknowns_are_left_out() -> None:
    consumer = FakeConsumer(
        positions={0: 40, 1: OFFSET_INVALID, 2: 7, 3: 9},
        highs={0: 50, 1: 30, 2: OFFSET_INVALID, 3: 9},
    )
    assert partition_lags(consumer) == {0: 10, 3: 0}


def test_no_assignment_means_no_lag() -> None:
    assert partition_lags(FakeConsumer(positions={}, highs={})) == {}


@dataclass
class FakeClock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def lag_series(metrics: WorkerMetrics) -> dict[str, float]:
    return {
        dict(labels)["partition"]: v
        for (name, labels), v in samples(metrics).items()
        if name == "simstream_consumer_lag"
    }


def test_lag_is_sampled_at_most_once_per_interval() -> None:
    metrics, clock = WorkerMetrics(), FakeClock()
    sampler = LagSampler(metrics, interval_s=5.0, clock=clock)
    consumer = FakeConsumer(positions={0: 1}, highs={0: 4})
    sampler.maybe_sample(consumer)
    assert lag_series(metrics) == {"0": 3}
    consumer.highs[0] = 10
    clock.now += 4.9
    sampler.maybe_sample(consumer)
    assert lag_series(metrics) == {"0": 3}
    assert consumer.calls == ["assignment"]
    clock.now += 0.1
    sampler.maybe_sample(consumer)
    assert lag_series(metrics) == {"0": 9}


def test_partitions_no_longer_assigned_disappear_from_the_lag_gauge() -> None:
    metrics, clock = WorkerMetrics(), FakeClock()
    sampler = LagSampler(metrics, interval_s=1.0, clock=clock)
    sampler.maybe_sample(FakeConsumer(positions={0: 1, 1: 2, 2: 3}, highs={0: 1, 1: 5, 2: 3}))
    assert lag_series(metrics) == {"0": 0, "1": 3, "2": 0}
    metrics.forget_partitions([2])  # what a revoke does at once
    assert lag_series(metrics) == {"0": 0, "1": 3}
    clock.now += 1.0
    sampler.maybe_sample(FakeConsumer(positions={1: 4}, highs={1: 5}))
    assert lag_series(metrics) == {"1": 1}


def test_a_consumer_error_keeps_the_last_lag_instead_of_failing_the_worker() -> None:
    metrics, clock = WorkerMetrics(), FakeClock()
    sampler = LagSampler(metrics, interval_s=1.0, clock=clock)
    consumer = FakeConsumer(positions={0: 1}, highs={0: 6})
    sampler.maybe_sample(consumer)
    consumer.fail = True
    clock.now += 1.0
    sampler.maybe_sample(consumer)
    assert consumer.calls == ["assignment", "assignment"]
    assert lag_series(metrics) == {"0": 5}
