"""The stall figure of `simstream chaos`: the longest gap between committed records by create time."""

from __future__ import annotations

from simstream.topic_records import TopicRecord, longest_gap_s


def test_longest_gap_is_between_consecutive_create_times_in_any_read_order() -> None:
    records = [TopicRecord(b"a", b"1", 5_000), TopicRecord(b"b", b"1", 1_000), TopicRecord(b"c", None, 1_500)]
    assert longest_gap_s(records) == 3.5
    assert longest_gap_s([*records, TopicRecord(b"d", b"1", None)]) == 3.5  # no timestamp: not counted


def test_fewer_than_two_records_have_no_gap() -> None:
    assert longest_gap_s([]) == 0.0
    assert longest_gap_s([TopicRecord(b"a", b"1", 7)]) == 0.0
