"""Where Redis really is in the input topic: the next offset per partition whose effects it holds.

Kafka's committed offsets say what the group finished; they cannot tell that Redis lost acknowledged
writes afterwards (a crash with ``appendfsync everysec``, a restore from an older snapshot, a failover to
a lagging replica). So each batch writes its next offsets to Redis after its own writes. Redis applies
commands in one order and persists and replicates them in that order, so whatever state it comes back
with, an offset found there is never ahead of the writes it stands for. The worker compares it with what
it committed and replays the difference (consumers/worker.py); replays are harmless because every write
is version-fenced.

One gap remains: a Redis that restarts during a batch (redis-py retries the commands on the new
process) could take the batch's offsets although it lost earlier writes. So a batch notes the Redis
process (``run_id``) before its check and its offsets are recorded only by that same process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis

from simstream.core.redis_client import redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_scripts import ADVANCE_OFFSETS

Partition = tuple[str, int]  # (topic, partition)


def _field(partition: Partition) -> str:
    topic, number = partition
    return f"{topic}:{number}"


class AppliedOffsets:
    def __init__(self, client: redis.Redis, keys: RedisKeys, group_id: str) -> None:
        self._client = client
        self._key = keys.applied_offsets(group_id)
        self._advance = client.register_script(ADVANCE_OFFSETS)

    def incarnation(self) -> str:
        """The running Redis process (``run_id``): a new one after every restart."""
        with redis_errors("read the Redis run_id"):
            return str(self._client.info("server")["run_id"])

    def read(self, partitions: Iterable[Partition]) -> tuple[str, dict[Partition, int | None]]:
        """The running Redis process, then the next offset it holds the effects of per partition (None:
        nothing recorded), in one round trip: one connection runs them in that order, so a restart in
        between leaves the old run_id, and the batch's :meth:`advance` is refused."""
        wanted = list(dict.fromkeys(partitions))
        pipe = self._client.pipeline(transaction=False)
        pipe.info("server")
        if wanted:
            pipe.hmget(self._key, [_field(p) for p in wanted])
        with redis_errors(f"read the applied offsets of {len(wanted)} partition(s)"):
            replies = pipe.execute()
        values = replies[1] if wanted else []
        return str(replies[0]["run_id"]), {
            p: None if v is None else int(v) for p, v in zip(wanted, values, strict=True)
        }

    def advance(self, offsets: Mapping[Partition, int], incarnation: str) -> bool:
        """Record that Redis holds the effects of every record before these offsets (never moves back);
        False, recording nothing, when the Redis process is no longer ``incarnation``."""
        if not offsets:
            return True
        args: list[str | int] = [incarnation]
        for partition, offset in offsets.items():
            args += [_field(partition), offset]
        with redis_errors(f"record the applied offsets of {len(offsets)} partition(s)"):
            return bool(self._advance(keys=[self._key], args=args))
