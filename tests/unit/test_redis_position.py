"""The replay rule of consumers/redis_position.py, with an in-memory ledger and consumer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from simstream.consumers.redis_position import RedisPosition

P0, P1 = ("products", 0), ("products", 1)


class Ledger:
    def __init__(self, held: dict[tuple[str, int], int]) -> None:
        self.held = held

    def read(self, partitions: Iterable[tuple[str, int]]) -> tuple[str, dict[tuple[str, int], int | None]]:
        return self.incarnation(), {p: self.held.get(p) for p in partitions}

    def incarnation(self) -> str:
        return "run-1"

    def advance(self, offsets: Mapping[tuple[str, int], int], incarnation: str) -> bool:
        if incarnation != self.incarnation():
            return False
        for p, offset in offsets.items():
            self.held[p] = max(self.held.get(p, 0), offset)
        return True


class Consumer:
    def __init__(self, committed: dict[tuple[str, int], int]) -> None:
        self._committed = committed
        self.seeks: list[tuple[str, int, int]] = []

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self._committed.get((tp.topic, tp.partition), -1001))
            for tp in partitions
        ]

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))


def assigned(held: dict[tuple[str, int], int], committed: dict[tuple[str, int], int]) -> tuple[RedisPosition, Consumer]:
    position = RedisPosition(Ledger(held))  # type: ignore[arg-type]
    consumer = Consumer(committed)
    position.assigned(consumer, [TopicPartition(*P0), TopicPartition(*P1)])  # type: ignore[arg-type]
    return position, consumer


def test_a_partition_redis_holds_less_of_is_sought_back_and_its_earlier_reads_dropped() -> None:
    position, consumer = assigned({P0: 40, P1: 75}, {P0: 50, P1: 75})
    position.polls = 7
    position.rewind_if_behind(consumer, [P0, P1])  # type: ignore[arg-type]
    assert consumer.seeks == [("products", 0, 40)]
    assert position.read_before_rewind(P0, 7) and not position.read_before_rewind(P0, 8)
    assert not position.read_before_rewind(P1, 7)
    position.rewind_if_behind(consumer, [P0])  # type: ignore[arg-type]
    assert len(consumer.seeks) == 1, "the position after a rewind is Redis's: no second rewind"


def test_nothing_recorded_in_redis_replays_the_partition_from_its_start() -> None:
    position, consumer = assigned({}, {P0: 50})
    position.rewind_if_behind(consumer, [P0, P1])  # type: ignore[arg-type]
    assert consumer.seeks == [("products", 0, OFFSET_BEGINNING)]


def test_redis_at_or_ahead_of_the_commit_needs_nothing() -> None:
    position, consumer = assigned({P0: 50, P1: 80}, {P0: 50, P1: 75})
    position.rewind_if_behind(consumer, [P0, P1])  # type: ignore[arg-type]
    assert consumer.seeks == []


def test_a_commit_moves_the_mark_and_a_revoke_forgets_it() -> None:
    position, consumer = assigned({P0: 10}, {P0: 10})
    position.rewind_if_behind(consumer, [P0])  # type: ignore[arg-type]  # each batch checks first
    position.applied([TopicPartition("products", 0, 20)])
    position.committed([TopicPartition("products", 0, 20)])
    position.rewind_if_behind(consumer, [P0])  # type: ignore[arg-type]
    assert consumer.seeks == []
    position.revoked([TopicPartition("products", 0)])
    position._applied.held.clear()  # type: ignore[attr-defined]
    position.rewind_if_behind(consumer, [P0])  # type: ignore[arg-type]
    assert consumer.seeks == [], "a partition no longer owned is not compared"
