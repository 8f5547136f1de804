"""Keep the worker's input position in step with what Redis really holds.

After a batch's Redis writes the worker records its next offsets in Redis (core/applied_offsets.py),
then commits them to Kafka. Before each batch it compares, per partition, the offset Redis holds with
the one it committed: when Redis is behind (it lost acknowledged writes: a crash with everysec fsync,
a restore from an older snapshot), the partition is sought back to where Redis is and the records read
since then are dropped, so the lost writes are replayed instead of lost. Nothing recorded in Redis for
a partition that Kafka has committed means Redis lost everything: the partition replays from its start.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from simstream.core.applied_offsets import AppliedOffsets, Partition

log = logging.getLogger("simstream.worker")

COMMITTED_TIMEOUT_S = 30.0


class RedisPosition:
    def __init__(self, applied: AppliedOffsets) -> None:
        self._applied = applied
        self._committed: dict[Partition, int] = {}  # next offsets committed to Kafka, per owned partition
        self._rewound_at: dict[Partition, int] = {}  # the poll during which a partition was sought back
        self.polls = 0  # consume calls so far: a record remembers the one that read it
        self.rewinds = 0
        self._incarnation = ""  # the Redis process the last check ran on; offsets are recorded only there

    def assigned(self, consumer: Consumer, partitions: Sequence[TopicPartition]) -> None:
        try:
            committed = consumer.committed(list(partitions), timeout=COMMITTED_TIMEOUT_S)
        except KafkaException as exc:
            # Not fatal: these partitions are compared with Redis from their first commit on.
            log.warning("cannot read the committed offsets of the assigned partitions: %s", exc)
            return
        for tp in committed:
            if tp.offset >= 0:
                self._committed[(tp.topic, tp.partition)] = tp.offset

    def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._committed.pop((tp.topic, tp.partition), None)
            self._rewound_at.pop((tp.topic, tp.partition), None)

    def rewind_if_behind(self, consumer: Consumer, partitions: Iterable[Partition]) -> None:
        """Seek back every partition whose effects Redis no longer holds up to what was committed."""
        known = {p: self._committed[p] for p in set(partitions) if p in self._committed}
        self._incarnation, held_by_partition = self._applied.read(known)
        for partition, held in held_by_partition.items():
            committed = known[partition]
            if held is not None and held >= committed:
                continue
            topic, number = partition
            log.warning(
                "Redis holds %s[%d] only up to offset %s, Kafka's committed offset is %d: "
                "Redis lost acknowledged writes, replaying from there",
                topic,
                number,
                "none" if held is None else held,
                committed,
            )
            consumer.seek(TopicPartition(topic, number, OFFSET_BEGINNING if held is None else held))
            self._rewound_at[partition] = self.polls
            self.rewinds += 1
            if held is None:
                del self._committed[partition]
            else:
                self._committed[partition] = held

    def read_before_rewind(self, partition: Partition, poll: int) -> bool:
        """A record read before its partition was sought back: it comes again, drop this copy."""
        rewound = self._rewound_at.get(partition)
        return rewound is not None and poll <= rewound

    def applied(self, offsets: Sequence[TopicPartition]) -> None:
        """The batch's writes are in Redis: record its next offsets there (before committing to Kafka)."""
        if not self._applied.advance({(tp.topic, tp.partition): tp.offset for tp in offsets}, self._incarnation):
            # Its earlier writes may be gone with the old process: the next check finds out and replays.
            log.warning("Redis restarted during the batch: its input offsets are not recorded in Redis")

    def committed(self, offsets: Sequence[TopicPartition]) -> None:
        for tp in offsets:
            self._committed[(tp.topic, tp.partition)] = tp.offset
