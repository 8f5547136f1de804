"""The worker's in-process stats stay bounded however long it runs."""

from __future__ import annotations

import pytest

from simstream.consumers.stats import RecentIds, SampleRing, WorkerStats


def test_sample_ring_keeps_the_latest_samples_only() -> None:
    ring = SampleRing(capacity=4)
    ring.extend(float(i) for i in range(10))
    assert ring.added == 10
    assert len(ring) == 4
    assert ring.since() == [6.0, 7.0, 8.0, 9.0]


def test_sample_ring_reads_from_a_position() -> None:
    ring = SampleRing(capacity=4)
    ring.extend([1.0, 2.0])
    mark = ring.added
    ring.extend([3.0, 4.0, 5.0])
    assert ring.since(mark) == [3.0, 4.0, 5.0]
    ring.extend([6.0, 7.0])  # 3.0 and 4.0 are overwritten: what is left of the phase
    assert ring.since(mark) == [4.0, 5.0, 6.0, 7.0]
    assert ring.since(ring.added) == []


def test_recent_ids_are_bounded_and_count_distinct_ids() -> None:
    ids = RecentIds(capacity=3)
    for item in ["a", "b", "a", "c", "b"]:
        ids.add(item)
    assert len(ids) == 3 and ids.held == 3
    assert "a" in ids and "c" in ids
    for item in ["d", "e", "f", "g"]:
        ids.add(item)
    assert ids.held == 3
    assert len(ids) == 7
    assert "a" not in ids and "g" in ids


def test_a_long_lived_worker_stats_object_holds_a_fixed_number_of_samples() -> None:
    stats = WorkerStats(freshness_s=SampleRing(capacity=100), emitted_ids=RecentIds(capacity=50))
    for batch in range(1_000):
        stats.freshness_s.extend([0.5] * 10)
        stats.emitted_ids.add(f"sku-{batch}")
    assert len(stats.freshness_s) == 100 and stats.freshness_s.added == 10_000
    assert stats.emitted_ids.held == 50 and len(stats.emitted_ids) == 1_000
    assert stats.percentile(99) == 0.5


def test_percentile_of_no_samples_is_none() -> None:
    assert WorkerStats().percentile(50) is None


@pytest.mark.parametrize("cls", [SampleRing, RecentIds])
def test_capacity_must_be_positive(cls: type[SampleRing] | type[RecentIds]) -> None:
    with pytest.raises(ValueError):
        cls(capacity=0)
