"""The commit order of one batch (consumers/checkpoint.py) over fakes that record every call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from simstream.consumers.checkpoint import BatchOutput, Checkpoint
from simstream.core.list_store import StoredList
from simstream.core.pipeline import BatchResult
from simstream.producers.sink import DeliveryError, SourceRecord
from simstream.schemas.codec import DecodeFailure

OFFSETS = [TopicPartition("products", 0, 12), TopicPartition("products", 1, 7)]


class Calls:
    def __init__(self) -> None:
        self.names: list[str] = []


class FakeSink:
    def __init__(self, calls: Calls, *, transactional: bool, fail_on: str | None = None) -> None:
        self.calls = calls
        self.transactional = transactional
        self.fail_on = fail_on

    def _call(self, name: str) -> None:
        self.calls.names.append(name)
        if name == self.fail_on:
            raise DeliveryError(f"{name} failed")

    def begin(self) -> None:
        if self.transactional:
            self._call("begin")

    def dead_letter(self, record: SourceRecord, failure: DecodeFailure) -> None:
        self._call("dead_letter")

    def emit_lists(self, lists: Sequence[StoredList]) -> None:
        self._call("emit_lists")

    def emit_tombstones(self, product_ids: Sequence[str]) -> None:
        self._call("emit_tombstones")

    def flush(self, timeout_s: float = 30.0) -> None:
        self._call("flush")

    def commit(self, offsets: Sequence[TopicPartition], group_metadata: Any) -> None:
        assert group_metadata == "group-metadata"
        self._call("transaction_commit")

    def commit_records(self) -> None:
        self._call("flush")
        if self.transactional:
            self._call("transaction_commit")

    def abort(self) -> None:
        self._call("abort")


class FakeOffsets:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.committed: list[TopicPartition] = []

    def commit_offsets(self, offsets: Sequence[TopicPartition]) -> None:
        self.calls.names.append("consumer_commit")
        self.committed = list(offsets)

    def group_metadata(self) -> Any:
        return "group-metadata"


class FakeLists:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.current: list[BatchResult] = []

    def commit(self, result: BatchResult) -> None:
        self.calls.names.append("lists_current")
        self.current.append(result)


class FakePosition:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def applied(self, offsets: Sequence[TopicPartition]) -> None:
        self.calls.names.append("redis_applied")

    def committed(self, offsets: Sequence[TopicPartition]) -> None:
        self.calls.names.append("position_committed")


class FakeRecord:
    def topic(self) -> str:
        return "products"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 11

    def key(self) -> bytes:
        return b"sku-1"

    def value(self) -> bytes:
        return b"{"


def parts(transactional: bool, fail_on: str | None = None) -> tuple[Checkpoint, Calls, FakeOffsets, FakeLists]:
    calls = Calls()
    offsets, lists = FakeOffsets(calls), FakeLists(calls)
    sink = FakeSink(calls, transactional=transactional, fail_on=fail_on)
    return Checkpoint(sink, offsets, lists, FakePosition(calls)), calls, offsets, lists


def output() -> BatchOutput:
    failure = DecodeFailure("invalid_json", "not JSON")
    return BatchOutput([(FakeRecord(), failure)], BatchResult(tombstones=["sku-gone"]), OFFSETS)


def test_at_least_once_delivers_then_makes_lists_current_then_commits_the_offsets() -> None:
    checkpoint, calls, offsets, lists = parts(transactional=False)
    checkpoint.commit(output())
    assert calls.names == [
        "dead_letter",
        "emit_lists",
        "emit_tombstones",
        "flush",
        "lists_current",
        "redis_applied",
        "consumer_commit",
        "position_committed",
    ]
    assert offsets.committed == OFFSETS
    assert len(lists.current) == 1


def test_exactly_once_runs_the_same_order_inside_one_transaction() -> None:
    checkpoint, calls, offsets, _ = parts(transactional=True)
    checkpoint.commit(output())
    assert calls.names == [
        "begin",
        "dead_letter",
        "emit_lists",
        "emit_tombstones",
        "flush",
        "lists_current",
        "redis_applied",
        "transaction_commit",
        "position_committed",
    ]
    assert offsets.committed == []  # the offsets went into the transaction, not through the consumer


def test_a_batch_of_dead_letters_only_commits_no_lists() -> None:
    checkpoint, calls, _, lists = parts(transactional=False)
    checkpoint.commit(BatchOutput([(FakeRecord(), DecodeFailure("empty_key", "no key"))], None, OFFSETS))
    assert calls.names == ["dead_letter", "flush", "redis_applied", "consumer_commit", "position_committed"]
    assert lists.current == []


@pytest.mark.parametrize("transactional", [False, True])
@pytest.mark.parametrize("fail_on", ["emit_lists", "flush"])
def test_a_failed_delivery_commits_nothing(transactional: bool, fail_on: str) -> None:
    checkpoint, calls, offsets, lists = parts(transactional, fail_on)
    with pytest.raises(DeliveryError):
        checkpoint.commit(output())
    assert calls.names[-1] == fail_on
    assert lists.current == [] and offsets.committed == []
    assert not {"redis_applied", "transaction_commit", "position_committed"} & set(calls.names)


def test_a_failed_transaction_commit_leaves_the_position_unmoved() -> None:
    checkpoint, calls, _, _ = parts(transactional=True, fail_on="transaction_commit")
    with pytest.raises(DeliveryError):
        checkpoint.commit(output())
    assert "position_committed" not in calls.names


def test_abort_swallows_a_failing_abort() -> None:
    checkpoint, calls, _, _ = parts(transactional=True, fail_on="abort")
    checkpoint.abort()  # logged: the retry of the batch aborts again or begins afresh
    assert calls.names == ["abort"]


@pytest.mark.parametrize("transactional", [False, True])
def test_a_first_loads_lists_are_delivered_without_offsets(transactional: bool) -> None:
    checkpoint, calls, offsets, lists = parts(transactional=transactional)
    checkpoint.deliver_lists([])
    expected = ["begin", "emit_lists", "flush", "transaction_commit"] if transactional else ["emit_lists", "flush"]
    assert calls.names == expected
    assert offsets.committed == [] and lists.current == []
