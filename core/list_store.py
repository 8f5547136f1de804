"""The list protocol in one place: pools, list versions, prepare/commit, fences, and their Lua.

Keys (per product Q, core/redis_keys): ``similar:{Q}`` holds the exact JSON emitted to the output
topic (``similar-items.v1``: a storefront reads a list with one GET); ``listmeta:{Q}`` holds the
pool (core/pools) and the counters below; ``rev:{M}`` is the set of products whose pool holds M;
``kth`` on Q's product hash is a lower bound of the pool's bound (it lags rises by up to
:data:`KTH_LAG`), indexed so that reverse searches find the pools a changed product may enter
(core/pool_refresh); ``dropped:{M}`` remembers, for a while, the pools
that held M when a batch deleted it (the replay of that delete re-emits them).

The protocol (ARCHITECTURE.md, "The list protocol"):

- ``revision`` counts pool changes. A caller reads a pool with its revision, computes the new pool
  from reads made after that, and PREPARE applies it only if the revision did not move (compare and
  set): concurrent workers updating the same pool never lose each other's changes; a loser reads
  again and recomputes. PREPARE changes the pool, its rev sets and ``kth`` together.
- PREPARE also refuses a pool that a member enters at another product version than the one it was
  scored with (``PoolProposal.member_versions``): that member's writer read ``rev:`` before this pool
  held it, so no one else would correct the score. The caller recomputes the pool.
- PREPARE also gives the list to emit a ``list_version`` from the list's own clock:
  max(every version it issued or saw + 1, the server's time in microseconds). Versions of one list
  only rise, also after Redis lost writes (a restore, a crash with everysec fsync): the lists a
  replay emits outrank the ones readers already have. A list equal to the current one is not
  emitted, unless a list is in flight (``pending``) that would otherwise reach the topic last.
- COMMIT makes a delivered list current (``similar:{Q}``, ``committed``) only when it is fresher
  than the current one and than the ``fence``: the freshest list wins in Redis and on the topic,
  whatever order the workers finish in.
- DELETE (after the tombstone was delivered) drops the list and the pool, and moves the fence past
  every version issued, so a list computed before the delete cannot become current.

``ListStore`` is the Redis implementation; ``MemoryListStore`` keeps the same rules in dicts for
unit tests of the ordering and replay rules.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from operator import itemgetter
from typing import Any, Final, Literal, NamedTuple, Protocol

import orjson
import redis

from simstream.core.decode_memo import DecodeMemo
from simstream.core.errors import StoreError
from simstream.core.pools import COMPLETE, Pool, decode_pool, encode_pool, pool_entry
from simstream.core.redis_client import make_redis_client, redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import text
from simstream.core.vector_store import Neighbor
from simstream.core.vector_types import neighbors
from simstream.schemas.settings import Settings
from simstream.schemas.similar_items import SIMILAR_ITEMS_SCHEMA

# Lists whose last read or written pool and current list stay decoded (core/decode_memo): about 20 KB
# each. A worker's batches keep reading the lists they wrote; beyond this the oldest are decoded again.
DECODE_MEMO_LISTS: Final = 10_000

# How long ``dropped:{id}`` remembers the lists that held a deleted product: a replay of the delete
# (a worker killed before its records were committed) re-emits them. Replays come within minutes;
# a week covers a stream that stood still for days, and bounds what deletes leave behind.
DROPPED_HOLDERS_TTL_S: Final = 7 * 24 * 3600

# How far the indexed ``kth`` may lag below a pool's bound before PREPARE writes it: every write to
# the product hash re-indexes all of it, its vector too, and most bound changes are small rises. A
# lower ``kth`` stays safe (no outsider scores above it); reverse searches only find a few more
# candidates, whose exact scores then turn them away (core/pool_refresh).
KTH_LAG: Final = 0.005

# Scores are rounded in the stored/emitted JSON: stable bytes, and no float32 noise on the wire.
SCORE_DECIMALS: Final = 6

# How a prepared list is emitted: "emit" when it changed, "same" when it equals the current list (not
# emitted unless a list is in flight), "forced" always (a replay: its earlier records may be lost).
Mode = Literal["emit", "same", "forced"]

# Outcomes of PREPARE.
EMIT: Final = 1
UNCHANGED: Final = 0  # the pool was stored; the list equals the current one: nothing to emit
CONFLICT: Final = -1  # the pool changed since it was read: read again and recompute
MEMBER_GONE: Final = -2  # a product entering the pool was deleted or written since it was scored: recompute
OWNER_GONE: Final = -3  # the list's own product is deleted: its tombstone covers it


class ListWrite(NamedTuple):
    """A list written as is (tools, tests): its items are its pool."""

    items: Sequence[Neighbor]
    source_version: int
    model: str


@dataclass(frozen=True, slots=True)
class StoredList:
    product_id: str
    list_version: int
    source_version: int
    model: str
    computed_at: datetime
    items: tuple[Neighbor, ...]
    payload: bytes  # the exact JSON stored at similar:{id}; emit these bytes as the record value


@dataclass(frozen=True, slots=True)
class ListState:
    """What a caller reads before recomputing a list: compare-and-set with ``revision``."""

    revision: int
    pool: Pool | None  # None: no pool (never computed, deleted, or an older format): search
    members: frozenset[str]  # what the rev: sets hold for this list now
    current: StoredList | None  # the committed list (similar:{id})


@dataclass(frozen=True, slots=True)
class PoolProposal:
    """A recomputed pool and the list ranked from it, offered to PREPARE."""

    state: ListState  # what it was computed from
    pool: Pool
    items: Sequence[Neighbor]
    source_version: int  # the owner's product version (the payload's source_version)
    model: str
    mode: Mode = "emit"
    check_owner: bool = True  # False for tools writing lists of products they did not store
    # The members entering the pool must exist at the version they were scored with (False: tools, tests).
    check_members: bool = True
    # The product version each member was scored with (entering ones at least, when checked): a member
    # written since then is refused, as its writer looked up rev: before this pool held it.
    member_versions: Mapping[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Prepared:
    ready: dict[str, StoredList] = field(default_factory=dict)  # to emit, then commit
    retry: list[str] = field(default_factory=list)  # the pool moved or a member is gone or newer: recompute
    unchanged: int = 0
    owner_gone: int = 0
    watched: tuple[str | None, ...] = ()  # the values of the keys ``prepare(watch=...)`` read after the PREPAREs


def utc_now() -> datetime:
    return datetime.now(UTC)


def server_micros_now() -> int:
    return time.time_ns() // 1000


def list_payload(
    product_id: str, items: Sequence[Neighbor], source_version: int, model: str, list_version: int, at: datetime
) -> bytes:
    """The similar-items JSON that is emitted and stored at ``similar:{id}``.

    Written directly, not through the pydantic model: this runs for every list of every batch, and its
    inputs are the store's own ids and scores. A unit test holds it equal to the model's encoding.
    """
    return _payload(product_id, stored_items(items), source_version, model, list_version, at)


def _payload(
    product_id: str, stored: Sequence[Neighbor], source_version: int, model: str, list_version: int, at: datetime
) -> bytes:
    """:func:`list_payload` of items already rounded (:func:`stored_items`)."""
    if not all(math.isfinite(n.score) for n in stored):
        raise ValueError(f"the list of {product_id!r} has a score that is not a finite number")
    record = {
        "schema": SIMILAR_ITEMS_SCHEMA,
        "product_id": product_id,
        "list_version": list_version,
        "model": model,
        "computed_at": at,
        "source_version": source_version,
        "items": [{"product_id": n.product_id, "score": n.score} for n in stored],
    }
    return orjson.dumps(record, option=orjson.OPT_UTC_Z)


_ITEM_FIELDS = itemgetter("product_id", "score")


def _neighbors(items: Sequence[Mapping[str, Any]]) -> tuple[Neighbor, ...]:
    """The items of a list this module wrote (every batch reads thousands of them)."""
    found = tuple(neighbors(map(_ITEM_FIELDS, items)))
    if not set(map(type, chain.from_iterable(found))) <= {str, float}:
        raise ValueError("a list item is not a product id with a float score")
    return found


def stored_items(items: Sequence[Neighbor]) -> tuple[Neighbor, ...]:
    """The items as the payload holds them: scores rounded to SCORE_DECIMALS."""
    return tuple(neighbors((n.product_id, round(n.score, SCORE_DECIMALS)) for n in items))


def decode_list(payload: bytes) -> StoredList:
    """A stored similar-items JSON (one this module wrote) back into a StoredList, without the model's
    validation: every batch reads thousands of them. Output records are checked by decode_similar_items."""
    try:
        data = orjson.loads(payload)
        if data["schema"] != SIMILAR_ITEMS_SCHEMA:
            raise ValueError(f"schema {data['schema']!r}")
        return StoredList(
            product_id=str(data["product_id"]),
            list_version=int(data["list_version"]),
            source_version=int(data["source_version"]),
            model=str(data["model"]),
            computed_at=datetime.fromisoformat(data["computed_at"]),
            items=_neighbors(data["items"]),
            payload=payload,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"stored similar-items list is not valid {SIMILAR_ITEMS_SCHEMA}: {exc!r}") from exc


def pool_members(raw: bytes | str | None) -> frozenset[str]:
    """The members a stored ``pool`` field names (this format, or the older JSON array of ids)."""
    pool = decode_pool(raw)
    if pool is not None:
        return frozenset(pool.members())
    if raw is None:
        return frozenset()
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return frozenset()
    return frozenset(m for m in data if isinstance(m, str)) if isinstance(data, list) else frozenset()


def pool_state(raw: bytes | str | None) -> tuple[Pool | None, frozenset[str]]:
    """A stored ``pool`` field: the pool (None: none, or an older format) and the members the rev sets
    hold."""
    pool = decode_pool(raw)
    return pool, frozenset(pool.members()) if pool is not None else pool_members(raw)


def items_pool(items: Sequence[Neighbor], source_version: int) -> Pool:
    """A list written as is: its items are its pool, complete (nothing known outside)."""
    return Pool(tuple(pool_entry(n.product_id, n.score, n.score) for n in items), COMPLETE, source_version)


class Lists(Protocol):
    """The narrow list protocol the pipeline needs (ListStore, MemoryListStore)."""

    def read_states(self, ids: Sequence[str]) -> dict[str, ListState]: ...
    def prepare(self, proposals: Mapping[str, PoolProposal], *, watch: Sequence[str] = ()) -> Prepared: ...
    def commit(self, lists: Iterable[StoredList]) -> list[bool]: ...
    def delete_list(self, product_id: str) -> bool: ...
    def rev_many(self, ids: Sequence[str]) -> dict[str, set[str]]: ...


def _call_prepare(proposals: Mapping[str, PoolProposal], run: Callable[[str, PoolProposal], tuple[int, int]],
                  clock: Callable[[], datetime]) -> Prepared:  # fmt: skip
    """The bookkeeping around PREPARE shared by both implementations."""
    prepared = Prepared()
    at = clock()
    for pid, proposal in proposals.items():
        outcome, version = run(pid, proposal)
        if outcome == EMIT:
            # What decode_list(payload) gives, without parsing the bytes just written.
            items = stored_items(proposal.items)
            payload = _payload(pid, items, proposal.source_version, proposal.model, version, at)
            prepared.ready[pid] = StoredList(pid, version, proposal.source_version, proposal.model, at, items, payload)
        elif outcome == UNCHANGED:
            prepared.unchanged += 1
        elif outcome == OWNER_GONE:
            prepared.owner_gone += 1
        else:
            prepared.retry.append(pid)
    return prepared


def _membership_change(proposal: PoolProposal) -> tuple[list[str], list[str], frozenset[str]]:
    """(members leaving, members entering) the rev sets, from the state the pool was computed from, and
    the members of the new pool."""
    new = frozenset(proposal.pool.members())
    old = proposal.state.members
    return sorted(old - new), sorted(new - old), new


def _checked_members(pid: str, proposal: PoolProposal, entering: Sequence[str]) -> dict[str, int]:
    """The entering members PREPARE checks, with the version each was scored with (none unchecked)."""
    if not proposal.check_members:
        return {}
    missing = [member for member in entering if member not in proposal.member_versions]
    if missing:
        raise ValueError(f"the pool of {pid!r} gives no scored version of entering member(s) {missing}")
    return {member: proposal.member_versions[member] for member in entering}


# --- Lua (Redis) ---------------------------------------------------------------------------------

# The list's clock: one more than every version it issued or saw, or the server's microseconds when
# later. Microseconds stay exact in Lua's doubles until the year 2255; %.0f avoids 1.79e+15.
_NEXT_VERSION = """
local function next_version(meta_key)
  local meta = redis.call('HMGET', meta_key, 'clock', 'committed', 'pending', 'fence')
  local value = -1
  for i = 1, 4 do
    local seen = tonumber(meta[i])
    if seen and seen > value then
      value = seen
    end
  end
  value = value + 1
  local now = redis.call('TIME')
  local micros = tonumber(now[1]) * 1000000 + tonumber(now[2])
  if micros > value then
    value = micros
  end
  local version = string.format('%.0f', value)
  redis.call('HSET', meta_key, 'clock', version)
  return version
end
"""

# KEYS[1] listmeta:{Q}, KEYS[2] product:{Q}, KEYS[3..] product hashes of the members entering the pool
# (none when they are not checked).
# ARGV[1] rev key prefix, ARGV[2] Q, ARGV[3] the revision the pool was computed from, ARGV[4] the pool
# JSON, ARGV[5] its bound, ARGV[6] mode (emit | same | forced), ARGV[7] the committed version the list
# was compared with ('' none), ARGV[8] '1' to require Q's product hash, ARGV[9] the number L of members
# leaving, ARGV[10] the number E of members entering, ARGV[11..10+L] those leaving, ARGV[11+L..10+L+E]
# those entering, ARGV[11+L+E..] the product version each KEYS[3..] member was scored with, in order.
# A checked member must still be at that version: a writer of M that read rev:{M} before this pool
# held M cannot have fixed M's score here. Returns {outcome, list_version}. The rev keys are built
# here, not declared: see ARCHITECTURE.md ("Redis Cluster") for what that means for a cluster.
PREPARE_POOL: Final = (
    _NEXT_VERSION
    + f"local KTH_LAG = {KTH_LAG!r}\n"
    + """
if ARGV[8] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
  return {-3, ''}
end
local meta = redis.call('HMGET', KEYS[1], 'revision', 'committed', 'pending')
local revision = tonumber(meta[1]) or 0
if revision ~= tonumber(ARGV[3]) then
  return {-1, ''}
end
local leaving = tonumber(ARGV[9])
local entering = tonumber(ARGV[10])
local scored = 8 + leaving + entering  -- KEYS[i] was scored at version ARGV[scored + i]
for i = 3, #KEYS do
  if redis.call('HGET', KEYS[i], 'version') ~= ARGV[scored + i] then
    return {-2, ''}
  end
end
for i = 11, 10 + leaving do
  redis.call('SREM', ARGV[1] .. ARGV[i], ARGV[2])
end
for i = 11 + leaving, 10 + leaving + entering do
  redis.call('SADD', ARGV[1] .. ARGV[i], ARGV[2])
end
redis.call('HSET', KEYS[1], 'pool', ARGV[4], 'revision', revision + 1)
-- kth is indexed: any write to the product hash re-indexes all of it, its vector too, so it is written
-- only when it must be (missing, or above the bound: an outsider in between would be missed) or when
-- the bound rose more than KTH_LAG above it (below that, a few more reverse candidates cost less).
if redis.call('EXISTS', KEYS[2]) == 1 then
  local indexed = tonumber(redis.call('HGET', KEYS[2], 'kth'))
  local bound = tonumber(ARGV[5])
  if indexed == nil or bound < indexed or bound > indexed + KTH_LAG then
    redis.call('HSET', KEYS[2], 'kth', ARGV[5])
  end
end
local committed = tonumber(meta[2]) or -1
local pending = tonumber(meta[3]) or -1
if ARGV[6] == 'same' and ARGV[7] ~= '' and tonumber(ARGV[7]) == committed and pending <= committed then
  return {0, ''}
end
local version = next_version(KEYS[1])
redis.call('HSET', KEYS[1], 'pending', version)
return {1, version}
"""
)

# KEYS[1] similar:{Q}, KEYS[2] listmeta:{Q}; ARGV[1] list_version, ARGV[2] the list JSON.
# Applied only above the committed version and the fence; 1 when it became current.
COMMIT_LIST: Final = """
local meta = redis.call('HMGET', KEYS[2], 'committed', 'pending', 'fence')
local version = tonumber(ARGV[1])
if (tonumber(meta[2]) or -1) <= version then
  redis.call('HDEL', KEYS[2], 'pending')
end
if version <= (tonumber(meta[1]) or -1) or version <= (tonumber(meta[3]) or -1) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], 'committed', ARGV[1])
return 1
"""

# KEYS[1] similar:{Q}, KEYS[2] listmeta:{Q}; ARGV[1] rev key prefix, ARGV[2] Q. Returns 1 when a list
# was removed. The pool's members lose Q in their rev sets (this format, or the older array of ids).
DELETE_LIST: Final = (
    _NEXT_VERSION
    + """
local pool = redis.call('HGET', KEYS[2], 'pool')
if pool then
  local ok, decoded = pcall(cjson.decode, pool)
  if ok and type(decoded) == 'table' then
    local entries = decoded['entries'] or decoded
    for _, entry in ipairs(entries) do
      local member = type(entry) == 'table' and entry[1] or entry
      if type(member) == 'string' then
        redis.call('SREM', ARGV[1] .. member, ARGV[2])
      end
    end
  end
end
local revision = tonumber(redis.call('HGET', KEYS[2], 'revision')) or 0
redis.call('HDEL', KEYS[2], 'pool', 'pending')
redis.call('HSET', KEYS[2], 'revision', revision + 1, 'fence', next_version(KEYS[2]))
return redis.call('DEL', KEYS[1])
"""
)


class ListStore:
    """The list protocol on Redis."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        top_k: int = 20,
        clock: Callable[[], datetime] = utc_now,
        catalog_prefix: str | None = None,
        memo_lists: int = DECODE_MEMO_LISTS,
    ) -> None:
        self._client = client
        # The bytes read back are mostly the ones this store wrote: decoded once (core/decode_memo).
        self._pools = DecodeMemo(pool_state, memo_lists)
        self._current = DecodeMemo(decode_list, memo_lists)
        self._top_k = top_k
        # Lists, pools and rev sets under ``prefix``; the product hashes PREPARE checks under the live
        # model generation's catalog prefix.
        self.keys = RedisKeys(prefix, catalog_prefix)
        self._clock = clock
        self._prepare_script = client.register_script(PREPARE_POOL)
        self._commit_script = client.register_script(COMMIT_LIST)
        self._delete_script = client.register_script(DELETE_LIST)

    @property
    def client(self) -> redis.Redis:
        return self._client

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis | None = None) -> ListStore:
        return cls(
            client if client is not None else make_redis_client(settings),
            prefix=settings.redis_prefix,
            top_k=settings.top_k,
            catalog_prefix=settings.redis_catalog_prefix,
        )

    def read_states(self, ids: Sequence[str]) -> dict[str, ListState]:
        """Each id's pool with its revision, and its current list, in one round trip."""
        if not ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        self.queue_state_reads(pipe, ids)
        with redis_errors(f"read {len(ids)} list state(s)"):
            replies = pipe.execute()
        return self.parse_states(ids, replies)

    def queue_state_reads(self, pipe: Any, ids: Sequence[str]) -> None:
        """Queue the reads of :meth:`read_states` on a caller's pipeline (two replies per id)."""
        for pid in ids:
            pipe.hmget(self.keys.list_meta(pid), ["revision", "pool"])
            pipe.get(self.keys.similar(pid))

    def parse_states(self, ids: Sequence[str], replies: Sequence[Any]) -> dict[str, ListState]:
        states: dict[str, ListState] = {}
        pools, current = self._pools, self._current
        for i, pid in enumerate(ids):
            (revision, raw_pool), payload = replies[2 * i], replies[2 * i + 1]
            pool, members = pools.decoded(pid, raw_pool) if isinstance(raw_pool, bytes) else pool_state(raw_pool)
            states[pid] = ListState(
                revision=int(revision) if revision is not None else 0,
                pool=pool,
                members=members,
                current=current.decoded(pid, payload) if isinstance(payload, bytes) else None,
            )
        return states

    def prepare(
        self,
        proposals: Mapping[str, PoolProposal],
        *,
        watch: Sequence[str] = (),
        deleted_holders: Mapping[str, Iterable[str]] | None = None,
    ) -> Prepared:
        """Store each proposed pool if its list's pool did not move, and version the lists to emit, in
        one round trip. Nothing becomes current: :meth:`commit` does that once they were delivered.
        ``watch``: string keys read in the same round trip, after the PREPAREs (``Prepared.watched``).
        ``deleted_holders``: per product the batch deleted, the lists whose pool held it; added to its
        ``dropped:{id}`` before the PREPAREs take it out of those pools (and its ``rev:{id}`` empties),
        so that a replay of the delete finds them again."""
        if not proposals and not watch:
            return Prepared()
        pipe = self._client.pipeline(transaction=False)
        remembered = 0
        for gone, holders in (deleted_holders or {}).items():
            if listed := list(holders):
                pipe.sadd(self.keys.dropped(gone), *listed)
                pipe.expire(self.keys.dropped(gone), DROPPED_HOLDERS_TTL_S)
                remembered += 2
        stored: dict[str, tuple[bytes, frozenset[str]]] = {}  # the pool's bytes and members, per list
        for pid, proposal in proposals.items():
            leaving, entering, members = _membership_change(proposal)
            checked = _checked_members(pid, proposal, entering)
            current = proposal.state.current
            stored[pid] = (encode_pool(proposal.pool), members)
            self._prepare_script(
                keys=[
                    self.keys.list_meta(pid),
                    self.keys.product(pid),
                    *map(self.keys.product, checked),
                ],
                args=[
                    self.keys.rev_prefix,
                    pid,
                    proposal.state.revision,
                    stored[pid][0],
                    repr(proposal.pool.bound),
                    proposal.mode,
                    "" if current is None else current.list_version,
                    "1" if proposal.check_owner else "",
                    len(leaving),
                    len(entering),
                    *leaving,
                    *entering,
                    *checked.values(),
                ],
                client=pipe,
            )
        for key in watch:
            pipe.get(key)
        with redis_errors(f"prepare {len(proposals)} list(s)"):
            results = pipe.execute()
        replies = iter(results[remembered:])

        def outcome(pid: str, proposal: PoolProposal) -> tuple[int, int]:
            code, version = next(replies)
            if code in (EMIT, UNCHANGED):  # stored: the next read of this pool returns these bytes
                raw, members = stored[pid]
                self._pools.remember(pid, raw, (proposal.pool, members))
            return int(code), int(version) if code == EMIT else 0

        prepared = _call_prepare(proposals, outcome, self._clock)
        if watch:
            prepared.watched = tuple(None if value is None else text(value) for value in results[-len(watch) :])
        return prepared

    def commit(self, lists: Iterable[StoredList]) -> list[bool]:
        """Make delivered lists current (``similar:``), in one round trip; False where a list at least
        as fresh was current already, or the list was deleted after it was prepared."""
        pipe = self._client.pipeline(transaction=False)
        committed = list(lists)
        count = len(committed)
        for stored in committed:
            self._commit_script(
                keys=[self.keys.similar(stored.product_id), self.keys.list_meta(stored.product_id)],
                args=[stored.list_version, stored.payload],
                client=pipe,
            )
        if not count:
            return []
        with redis_errors(f"commit {count} similar list(s)"):
            applied = [int(reply) == 1 for reply in pipe.execute()]
        for stored, current in zip(committed, applied, strict=True):
            if current:
                self._current.remember(stored.product_id, stored.payload, stored)
        return applied

    def delete_list(self, product_id: str) -> bool:
        """Drop the product's list and pool (its members' rev entries too); True if it had a list.

        ``rev:{product_id}`` (who lists this product) is kept: the caller refreshes those lists.
        """
        with redis_errors(f"delete similar list of {product_id!r}"):
            removed = self._delete_script(
                keys=[self.keys.similar(product_id), self.keys.list_meta(product_id)],
                args=[self.keys.rev_prefix, product_id],
            )
        return int(removed) == 1

    def write_lists(
        self, lists: Mapping[str, ListWrite | tuple[Sequence[Neighbor], int, str]]
    ) -> dict[str, StoredList]:
        """Make these lists current now, for callers with nothing to deliver in between (tools, tests)."""
        return _write_now(self, lists)

    def read_list(self, product_id: str) -> StoredList | None:
        return self.read_lists([product_id]).get(product_id)

    def read_lists(self, ids: Sequence[str]) -> dict[str, StoredList]:
        """The stored lists of the ids that have one."""
        if not ids:
            return {}
        with redis_errors(f"read {len(ids)} similar list(s)"):
            payloads = self._client.mget([self.keys.similar(pid) for pid in ids])
        return {
            pid: decode_list(payload) for pid, payload in zip(ids, payloads, strict=True) if isinstance(payload, bytes)
        }

    def read_pools(self, ids: Sequence[str]) -> dict[str, set[str]]:
        """The members of each id's pool (what the rev: sets should hold for it), for the ids with one."""
        if not ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for pid in ids:
            pipe.hget(self.keys.list_meta(pid), "pool")
        with redis_errors(f"read {len(ids)} pool(s)"):
            replies = pipe.execute()
        return {pid: set(pool_members(raw)) for pid, raw in zip(ids, replies, strict=True) if raw is not None}

    def rev(self, product_id: str) -> set[str]:
        """The products whose pool holds ``product_id``."""
        return self.rev_many([product_id])[product_id]

    def rev_many(self, ids: Sequence[str]) -> dict[str, set[str]]:
        if not ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for pid in ids:
            pipe.smembers(self.keys.rev(pid))
        with redis_errors(f"read rev sets of {len(ids)} product(s)"):
            replies = pipe.execute()
        return {pid: {text(member) for member in members} for pid, members in zip(ids, replies, strict=True)}


ListSpecs = Mapping[str, ListWrite | tuple[Sequence[Neighbor], int, str]]


def _write_now(store: Lists, lists: ListSpecs) -> dict[str, StoredList]:
    """Forced PREPARE then COMMIT of lists given as is, retried while a concurrent writer moves a pool."""
    specs = {pid: ListWrite(*spec) for pid, spec in lists.items()}
    written: dict[str, StoredList] = {}
    pending = list(specs)
    while pending:
        states = store.read_states(pending)
        proposals = {
            pid: PoolProposal(
                states[pid],
                items_pool(spec.items, spec.source_version),
                list(spec.items),
                spec.source_version,
                spec.model,
                mode="forced",
                check_owner=False,
                check_members=False,
            )
            for pid in pending
            if (spec := specs[pid])
        }
        prepared = store.prepare(proposals)
        store.commit(prepared.ready.values())
        written.update(prepared.ready)
        pending = prepared.retry
    return written


@dataclass(slots=True)
class _Meta:
    revision: int = 0
    clock: int = -1
    committed: int = -1
    pending: int = -1
    fence: int = -1
    pool: bytes | None = None


class MemoryListStore:
    """The same protocol in dicts: what unit tests of the ordering and replay rules run against.

    ``products`` gives each stored product's version, None when its hash is gone (PREPARE's checks;
    by default none is stored); ``micros`` is the server clock; ``strings`` the keys ``watch`` reads.
    """

    def __init__(
        self,
        products: Callable[[str], int | None] = lambda _pid: None,
        *,
        micros: Callable[[], int] = server_micros_now,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._version = products
        self._micros = micros
        self._clock = clock
        self._meta: dict[str, _Meta] = {}
        self._similar: dict[str, bytes] = {}
        self._rev: dict[str, set[str]] = {}
        self.kth: dict[str, float] = {}
        self.strings: dict[str, str] = {}
        self._lock = threading.Lock()

    def _next_version(self, meta: _Meta) -> int:
        meta.clock = max(meta.clock, meta.committed, meta.pending, meta.fence, self._micros() - 1) + 1
        return meta.clock

    def read_states(self, ids: Sequence[str]) -> dict[str, ListState]:
        states: dict[str, ListState] = {}
        with self._lock:
            for pid in ids:
                meta = self._meta.get(pid, _Meta())
                pool, members = pool_state(meta.pool)
                current = decode_list(self._similar[pid]) if pid in self._similar else None
                states[pid] = ListState(revision=meta.revision, pool=pool, members=members, current=current)
        return states

    def prepare(self, proposals: Mapping[str, PoolProposal], *, watch: Sequence[str] = ()) -> Prepared:
        prepared = _call_prepare(proposals, self._prepare_one, self._clock)
        prepared.watched = tuple(self.strings.get(key) for key in watch)
        return prepared

    def _prepare_one(self, pid: str, proposal: PoolProposal) -> tuple[int, int]:
        leaving, entering, _ = _membership_change(proposal)
        checked = _checked_members(pid, proposal, entering)
        with self._lock:
            if proposal.check_owner and self._version(pid) is None:
                return OWNER_GONE, 0
            meta = self._meta.setdefault(pid, _Meta())
            if meta.revision != proposal.state.revision:
                return CONFLICT, 0
            if any(self._version(member) != version for member, version in checked.items()):
                return MEMBER_GONE, 0
            for member in leaving:
                self._rev.get(member, set()).discard(pid)
            for member in entering:
                self._rev.setdefault(member, set()).add(pid)
            meta.pool, meta.revision = encode_pool(proposal.pool), meta.revision + 1
            if self._version(pid) is not None:
                self.kth[pid] = proposal.pool.bound
            current = proposal.state.current
            compared = None if current is None else current.list_version
            if proposal.mode == "same" and compared == meta.committed and meta.pending <= meta.committed:
                return UNCHANGED, 0
            meta.pending = self._next_version(meta)
            return EMIT, meta.pending

    def commit(self, lists: Iterable[StoredList]) -> list[bool]:
        applied: list[bool] = []
        with self._lock:
            for stored in lists:
                meta = self._meta.setdefault(stored.product_id, _Meta())
                if meta.pending <= stored.list_version:
                    meta.pending = -1
                fresh = stored.list_version > meta.committed and stored.list_version > meta.fence
                if fresh:
                    self._similar[stored.product_id] = stored.payload
                    meta.committed = stored.list_version
                applied.append(fresh)
        return applied

    def delete_list(self, product_id: str) -> bool:
        with self._lock:
            meta = self._meta.setdefault(product_id, _Meta())
            for member in pool_members(meta.pool):
                self._rev.get(member, set()).discard(product_id)
            meta.pool, meta.pending, meta.revision = None, -1, meta.revision + 1
            meta.fence = self._next_version(meta)
            return self._similar.pop(product_id, None) is not None

    def write_lists(
        self, lists: Mapping[str, ListWrite | tuple[Sequence[Neighbor], int, str]]
    ) -> dict[str, StoredList]:
        return _write_now(self, lists)

    def read_lists(self, ids: Sequence[str]) -> dict[str, StoredList]:
        with self._lock:
            return {pid: decode_list(self._similar[pid]) for pid in ids if pid in self._similar}

    def rev_many(self, ids: Sequence[str]) -> dict[str, set[str]]:
        with self._lock:
            return {pid: set(self._rev.get(pid, set())) for pid in ids}
