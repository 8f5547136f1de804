"""Model generations: the live model, and a shadow one being built beside it (`simstream model`).

A generation is one encoder with its own vectors: its product hashes and version fences under its own
catalog prefix (core/redis_keys) and its own RediSearch index. Everything else (lists, pools, rev sets,
offsets, the term snapshot) is shared: lists are computed from the live generation only.

``<prefix>models`` names the generations in use, ``<live>`` or ``<live>,<shadow>``, and every change of
it is one script (compare and set):

- register: ``1`` -> ``1,2``: workers write every product change into both generations from then on;
- promote: ``1,2`` -> ``2,1``: the shadow becomes live, and the first-load marker is set so that every
  list is rebuilt in bulk from the new vectors (core/first_load), as a term-snapshot switch does;
- drop the shadow: ``2,1`` -> ``2`` (cleanup, or abandoning an upgrade before promotion).

A batch compares the value it was built for with the value Redis holds after its product writes, and
again with its PREPAREs (ARCHITECTURE.md, "Changing the model"); without the key, the settings' model is
the one generation, as before generations existed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Final

import orjson
import redis

from simstream.core.errors import StoreError
from simstream.core.query_syntax import escape_glob
from simstream.core.redis_client import redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import text
from simstream.schemas.settings import Settings

# KEYS[1] models, KEYS[2] model:<live>, KEYS[3] model:<shadow>; ARGV[1] the live number, ARGV[2] the
# shadow number, ARGV[3]/[4] their descriptors. 1 when registered, 0 when another value is there.
_REGISTER: Final = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] and current ~= ARGV[1] .. ',' .. ARGV[2] then
  return 0
end
if not current or redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], ARGV[3])
end
redis.call('SET', KEYS[3], ARGV[4])
redis.call('SET', KEYS[1], ARGV[1] .. ',' .. ARGV[2])
return 1
"""

# KEYS[1] models, KEYS[2] the first-load marker; ARGV[1] the expected value, ARGV[2] the new one,
# ARGV[3] "1" to have every list rebuilt. 1 when set, 0 when the value was not the expected one.
_SWAP: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] == '1' then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('INCR', KEYS[2])
  else
    redis.call('SET', KEYS[2], 0)
  end
end
return 1
"""

_VERSIONED_INDEX = re.compile(r"-v\d+$")


class GenerationsMoved(Exception):
    """The generations in use changed while a batch wrote: it is processed again for the new ones."""


@dataclass(frozen=True, slots=True)
class GenerationWatch:
    """The ``models`` key, and the value a worker's pipeline was built for (None: no key)."""

    key: str
    expected: str | None

    def check(self, found: str | None) -> None:
        if found != self.expected:
            raise GenerationsMoved(f"the model generations moved from {self.expected} to {found}")


@dataclass(frozen=True, slots=True)
class Generation:
    """One model with its own vectors: its index and the catalog prefix of its product hashes."""

    number: int
    model: str  # as the operator named it: a model name or a local folder
    revision: str  # resolved: the one every worker must load
    model_id: str  # "<name>@<revision>", stamped on its vectors and (with the terms) on lists
    dim: int
    index_name: str
    catalog_prefix: str | None  # None: the deployment's prefix (the first generation)

    def settings(self, base: Settings) -> Settings:
        """``base`` pointed at this generation: its model, index and product hashes."""
        return base.model_copy(
            update={
                "model": self.model,
                "model_revision": self.revision,
                "index_name": self.index_name,
                "redis_catalog_prefix": self.catalog_prefix,
            }
        )

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes | str) -> Generation:
        try:
            fields = orjson.loads(raw)
            return cls(**fields)
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise StoreError(f"unreadable model generation descriptor: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Generations:
    live: Generation
    shadow: Generation | None = None

    @property
    def value(self) -> str:
        """What ``<prefix>models`` holds for these generations."""
        return str(self.live.number) if self.shadow is None else f"{self.live.number},{self.shadow.number}"


def first_generation(settings: Settings, model_id: str, dim: int) -> Generation:
    """The generation a deployment has before any upgrade: the settings' model, index and prefix."""
    revision = model_id.rpartition("@")[2]
    return Generation(1, settings.model, revision, model_id, dim, settings.index_name, settings.redis_catalog_prefix)


def new_generation(settings: Settings, number: int, model: str, revision: str, model_id: str, dim: int) -> Generation:
    """Generation ``number`` (2 or more): index ``<index>-v<N>``, catalog prefix ``<prefix>g<N>:``."""
    base = _VERSIONED_INDEX.sub("", settings.index_name)
    return Generation(number, model, revision, model_id, dim, f"{base}-v{number}", f"{settings.redis_prefix}g{number}:")


def parse_value(value: str) -> tuple[int, int | None]:
    """``"2"`` -> (2, None), ``"2,1"`` -> (2, 1)."""
    try:
        numbers = [int(part) for part in value.split(",")]
    except ValueError as exc:
        raise StoreError(f"unreadable model generations {value!r}") from exc
    if len(numbers) == 1:
        return numbers[0], None
    if len(numbers) == 2:
        return numbers[0], numbers[1]
    raise StoreError(f"unreadable model generations {value!r}")


class GenerationStore:
    """The generations in Redis: read them, register a shadow, promote it, drop it."""

    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._client = client
        self.keys = keys
        self._register = client.register_script(_REGISTER)
        self._swap = client.register_script(_SWAP)

    def value(self) -> str | None:
        """The raw ``models`` value (None: no upgrade ever ran here)."""
        with redis_errors("read the model generations"):
            raw = self._client.get(self.keys.generations)
        return None if raw is None else text(raw)

    def read(self) -> Generations | None:
        value = self.value()
        if value is None:
            return None
        live, shadow = parse_value(value)
        return Generations(self.describe(live), None if shadow is None else self.describe(shadow))

    def describe(self, number: int) -> Generation:
        with redis_errors(f"read model generation {number}"):
            raw = self._client.get(self.keys.generation(number))
        if raw is None:
            raise StoreError(f"model generation {number} is in use but has no descriptor")
        return Generation.decode(raw)

    def register(self, live: Generation, shadow: Generation) -> bool:
        """Make ``shadow`` the generation every change is also written to; False if others are in use."""
        with redis_errors(f"register model generation {shadow.number}"):
            done = self._register(
                keys=[self.keys.generations, self.keys.generation(live.number), self.keys.generation(shadow.number)],
                args=[live.number, shadow.number, live.encode(), shadow.encode()],
            )
        return int(done) == 1

    def swap(self, expected: Generations, new: Generations, *, rebuild_lists: bool) -> bool:
        """Compare and set the generations; ``rebuild_lists``: set the first-load marker in the same step."""
        with redis_errors(f"set the model generations to {new.value}"):
            done = self._swap(
                keys=[self.keys.generations, self.keys.first_load],
                args=[expected.value, new.value, "1" if rebuild_lists else ""],
            )
        return int(done) == 1


def live_settings(settings: Settings, client: redis.Redis) -> Settings:
    """``settings`` pointed at the live model generation (unchanged when no upgrade ever ran)."""
    found = GenerationStore(client, RedisKeys(settings.redis_prefix)).read()
    return settings if found is None else found.live.settings(settings)


def stored_generations(settings: Settings, client: redis.Redis) -> list[Generation]:
    """Every generation descriptor stored under the prefix (in use or not), by number."""
    keys = RedisKeys(settings.redis_prefix)
    found: list[Generation] = []
    with redis_errors("list the model generations"):
        for key in client.scan_iter(match=f"{escape_glob(keys.generation(0)[:-1])}*", count=1000):
            suffix = text(key).rpartition(":")[2]
            if suffix.isdigit():
                raw = client.get(key)
                if raw is not None:
                    found.append(Generation.decode(raw))
    return sorted(found, key=lambda generation: generation.number)
