"""A catalog's first load: products written as they stream in, every list built once in bulk at the end.

An empty index that a backlog fills would otherwise recompute each list again and again as the
catalog grows around it (core/pool_refresh). While the marker ``firstload`` exists, batches only write
products and deletes (``Pipeline.process(list_work=False)``) and count themselves on the marker; when a
worker has drained its partitions it builds every pool and list in blocks (core/bulk_lists), emits
them, and removes the marker, but only if no batch wrote since it started reading the catalog:

- the marker is set (SET NX) by a worker that starts on an empty index; every worker obeys it;
- a deferring batch increments it (INCR) after its writes: a write that the bulk pass may have missed
  moves the counter, or, after the marker was removed, creates it again, so another pass follows;
- the pass reads the counter before the catalog and removes the marker with compare-and-delete.

A switch to a new term snapshot (core/terms) sets the same marker: every list is rebuilt the same way.

The marker lives in Redis with the products: a worker killed at any point, or another worker, finds
it and finishes the load; offsets are committed per batch as usual, because what the lists still owe
is recorded there. Commands: SET, INCR, GET and a script (all in the worker's ACL).
"""

from __future__ import annotations

from typing import Final

import redis

from simstream.core.generations import GenerationWatch
from simstream.core.redis_client import command, redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.schemas.settings import Settings

# KEYS[1] the marker, KEYS[2] (optional) the model generations; ARGV[1] the counter read before the
# bulk pass, ARGV[2] the generations the pass was built for ("" for none). 1 when it was removed.
_FINISH: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if #KEYS == 2 and (redis.call('GET', KEYS[2]) or '') ~= ARGV[2] then
  return 0
end
return redis.call('DEL', KEYS[1])
"""


class FirstLoad:
    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._client = client
        self._key = keys.first_load
        self._finish = client.register_script(_FINISH)
        self.last_written: int | None = None  # the counter after this process's latest deferring batch

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis) -> FirstLoad:
        return cls(client, RedisKeys(settings.redis_prefix))

    def begin(self) -> bool:
        """Mark a first load (an empty catalog is about to be filled); False when one is marked already."""
        with redis_errors("mark a first load"):
            return bool(self._client.set(self._key, 0, nx=True))

    def pending(self) -> int | None:
        """The marker's counter, None when no first load is pending (read it before the catalog)."""
        with redis_errors("read the first-load marker"):
            value = self._client.get(self._key)
        return None if value is None else int(value)

    def note_writes(self) -> None:
        """A deferring batch wrote products: the bulk pass that read the counter before now must repeat."""
        with redis_errors("count a first-load batch"):
            # INCR itself: redis-py's incr() sends INCRBY, which the worker's ACL does not grant.
            self.last_written = int(command(self._client, "INCR", self._key))

    def finish(self, seen: int, generations: GenerationWatch | None = None) -> bool:
        """Remove the marker if no batch wrote since ``seen`` was read (and, with ``generations``, the
        live model is still the one the pass used); False: another pass is needed."""
        keys, args = [self._key], [str(seen)]
        if generations is not None:
            keys.append(generations.key)
            args.append(generations.expected or "")
        with redis_errors("finish the first load"):
            return int(self._finish(keys=keys, args=args)) == 1
