"""Each product's last emitted similar-items list in Redis, and the reverse index of list membership.

``similar:{id}`` holds the exact JSON emitted to the output topic (design.md §3, ``similar-items.v1``),
so a storefront reads a list with one GET. A list's ``list_version`` is the catalog sequence read before
it was computed (see redis_scripts): it rises with every list that saw newer writes, by more than one
at a time. ``listmeta:{id}`` keeps the committed, pending and fence stamps that order concurrent
writers. ``rev:{n}`` is the set of products whose list holds ``n``. One Lua script per product changes
them together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
import redis

from simstream.core.errors import StoreError
from simstream.core.redis_client import make_redis_client, redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import text
from simstream.core.redis_scripts import (
    ADVANCE_SEQUENCE,
    DELETE_LIST,
    PREPARE_EMIT,
    PREPARE_LIST,
    PREPARE_MEMBER_GONE,
    PREPARE_UNCHANGED,
    WRITE_LIST,
)
from simstream.core.vector_store import Neighbor
from simstream.schemas.codec import decode_similar_items, encode_similar_items
from simstream.schemas.settings import Settings
from simstream.schemas.similar_items import SIMILAR_ITEMS_SCHEMA, SimilarItem, SimilarItems

# Scores are rounded in the stored/emitted JSON: stable bytes, and no float32 noise on the wire.
SCORE_DECIMALS = 6


class ListWrite(NamedTuple):
    items: Sequence[Neighbor]
    source_version: int  # the product version the list was computed for
    model: str  # "<model id>@<revision>"
    pool: Sequence[str] | None = None  # the dense candidates it was ranked from; None: just the items
    admission: float | None = None  # dense score to enter the pool; None: the K-th item's score


@dataclass(frozen=True, slots=True)
class ListProposal:
    """A freshly computed list, offered for emission (see :meth:`ListStore.prepare`)."""

    write: ListWrite
    list_version: int  # the catalog stamp it was computed at
    compared_with: int | None = None  # list_version of the current list the caller compared it with
    unchanged: bool = False  # equal to that list (nothing to emit unless another list is in flight)
    forced: bool = False  # emit even when unchanged or equally fresh (a replay)


@dataclass(slots=True)
class Prepared:
    ready: dict[str, StoredList]  # to emit, then commit
    gone: list[str]  # the product or a member was deleted meanwhile: recompute these
    superseded: int = 0  # dropped: a list at least as fresh is current or in flight
    unchanged: int = 0


@dataclass(frozen=True, slots=True)
class StoredList:
    product_id: str
    list_version: int
    source_version: int
    model: str
    computed_at: datetime
    items: tuple[Neighbor, ...]
    payload: bytes  # the exact JSON stored at similar:{id}; emit these bytes as the record value
    # Known only for a list just computed (not in the payload): what commit stores beside it.
    pool: tuple[str, ...] | None = field(default=None, compare=False)
    admission: float | None = field(default=None, compare=False)


def utc_now() -> datetime:
    return datetime.now(UTC)


def list_payload(product_id: str, write: ListWrite, list_version: int, computed_at: datetime) -> bytes:
    """The similar-items JSON that is emitted and stored at ``similar:{id}``."""
    record = SimilarItems(
        product_id=product_id,
        list_version=list_version,
        model=write.model,
        computed_at=computed_at,
        source_version=write.source_version,
        items=[SimilarItem(product_id=n.product_id, score=round(n.score, SCORE_DECIMALS)) for n in write.items],
    )
    return encode_similar_items(record)


def admission_threshold(stored: StoredList, top_k: int) -> float:
    """The dense score a new neighbour must reach to enter this list's pool; -1 (anything) while it is
    short. Without a known pool, the list is its own pool: its K-th score."""
    if stored.admission is not None:
        return stored.admission
    return stored.items[-1].score if len(stored.items) >= top_k else -1.0


def pool_of(stored: StoredList) -> tuple[str, ...]:
    return stored.pool if stored.pool is not None else tuple(n.product_id for n in stored.items)


def decode_list(payload: bytes) -> StoredList:
    """A stored/emitted similar-items JSON back into a StoredList."""
    try:
        record = decode_similar_items(payload)
    except ValueError as exc:
        raise StoreError(f"stored similar-items list is not valid {SIMILAR_ITEMS_SCHEMA}: {exc}") from exc
    return StoredList(
        product_id=record.product_id,
        list_version=record.list_version,
        source_version=record.source_version,
        model=record.model,
        computed_at=record.computed_at,
        items=tuple(Neighbor(item.product_id, item.score) for item in record.items),
        payload=payload,
    )


class ListStore:
    def __init__(
        self, client: redis.Redis, *, prefix: str, top_k: int = 20, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._client = client
        self._top_k = top_k
        self.keys = RedisKeys(prefix)
        self._clock = clock
        self._prepare_script = client.register_script(PREPARE_LIST)
        self._write_script = client.register_script(WRITE_LIST)
        self._delete_script = client.register_script(DELETE_LIST)
        self._sequence_script = client.register_script(ADVANCE_SEQUENCE)

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis | None = None) -> ListStore:
        return cls(
            client if client is not None else make_redis_client(settings),
            prefix=settings.redis_prefix,
            top_k=settings.top_k,
        )

    def prepare(self, proposals: Mapping[str, ListProposal], *, check_members: bool = True) -> Prepared:
        """Decide, atomically per product, which proposed lists to emit, and build their records.

        Nothing becomes current: :meth:`commit` does that once they were delivered. ``check_members``
        sends back (``gone``) a list whose product or a member was deleted since it was computed.
        """
        prepared = Prepared(ready={}, gone=[])
        if not proposals:
            return prepared
        pipe = self._client.pipeline(transaction=False)
        for pid, proposal in proposals.items():
            write = proposal.write
            items = [n.product_id for n in write.items]
            pool = tuple(write.pool) if write.pool is not None else tuple(items)
            admission = write.admission if write.admission is not None else self._kth(write.items)
            self._prepare_script(
                keys=[*self._list_keys(pid), *(self.keys.product(member) for member in items)],
                args=[
                    *self._list_args(pid, proposal.list_version, admission, pool)[:5],
                    "" if proposal.compared_with is None else proposal.compared_with,
                    "1" if proposal.unchanged else "",
                    "1" if proposal.forced else "",
                    "1" if check_members else "",
                    *pool,
                ],
                client=pipe,
            )
        with redis_errors(f"prepare {len(proposals)} list(s)"):
            replies = pipe.execute()
        computed_at = self._clock()
        for (pid, proposal), reply in zip(proposals.items(), replies, strict=True):
            outcome = int(reply)
            if outcome == PREPARE_EMIT:
                write = proposal.write
                payload = list_payload(pid, write, proposal.list_version, computed_at)
                known_pool = None if write.pool is None else tuple(write.pool)
                prepared.ready[pid] = replace(decode_list(payload), pool=known_pool, admission=write.admission)
            elif outcome == PREPARE_MEMBER_GONE:
                prepared.gone.append(pid)
            elif outcome == PREPARE_UNCHANGED:
                prepared.unchanged += 1
            else:
                prepared.superseded += 1
        return prepared

    def commit(self, lists: Iterable[StoredList]) -> list[bool]:
        """Make prepared lists current (``similar:``, ``rev:``), in one pipeline; False where a list at
        least as fresh was already current."""
        pipe = self._client.pipeline(transaction=False)
        count = 0
        for stored in lists:
            count += 1
            pool = pool_of(stored)
            args = self._list_args(
                stored.product_id, stored.list_version, admission_threshold(stored, self._top_k), pool
            )
            self._write_script(
                keys=self._list_keys(stored.product_id),
                args=[*args[:5], stored.payload, "", "", "", *pool],
                client=pipe,
            )
        if not count:
            return []
        with redis_errors(f"write {count} similar list(s)"):
            return [int(applied) == 1 for applied in pipe.execute()]

    def _list_keys(self, product_id: str) -> list[str]:
        """KEYS[1..3] of PREPARE_LIST and WRITE_LIST."""
        return [self.keys.similar(product_id), self.keys.list_meta(product_id), self.keys.product(product_id)]

    def _list_args(self, product_id: str, stamp: int, admission: float, pool: Sequence[str]) -> list[Any]:
        """ARGV[1..5] of PREPARE_LIST and WRITE_LIST."""
        return [self.keys.rev_prefix, product_id, stamp, admission, orjson.dumps(list(pool))]

    def _kth(self, items: Sequence[Neighbor]) -> float:
        return items[-1].score if len(items) >= self._top_k else -1.0

    def write_lists(
        self, lists: Mapping[str, ListWrite | tuple[Sequence[Neighbor], int, str]]
    ) -> dict[str, StoredList]:
        """Make these lists current now, for callers that have nothing to deliver in between (tools,
        tests): they get a new catalog stamp, so they outrank every list written before."""
        if not lists:
            return {}
        with redis_errors("advance the catalog sequence"):
            stamp = int(self._sequence_script(keys=[self.keys.catalog_sequence]))
        proposals = {pid: ListProposal(ListWrite(*spec), stamp, forced=True) for pid, spec in lists.items()}
        prepared = self.prepare(proposals, check_members=False)
        self.commit(prepared.ready.values())
        return prepared.ready

    def read_list(self, product_id: str) -> StoredList | None:
        return self.read_lists([product_id]).get(product_id)

    def read_lists(self, ids: Sequence[str], *, with_pools: bool = False) -> dict[str, StoredList]:
        """The stored lists of the ids that have one; ``with_pools`` also reads the pool each was ranked
        from (a list written before pools were kept counts as its items)."""
        if not ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        pipe.mget([self.keys.similar(pid) for pid in ids])
        for pid in ids if with_pools else ():
            pipe.hget(self.keys.list_meta(pid), "pool")
        with redis_errors(f"read {len(ids)} similar list(s)"):
            payloads, *pools = pipe.execute()
        found: dict[str, StoredList] = {}
        for i, (pid, payload) in enumerate(zip(ids, payloads, strict=True)):
            if not isinstance(payload, bytes):
                continue
            stored = decode_list(payload)
            if with_pools and pools[i] is not None:
                stored = replace(stored, pool=tuple(orjson.loads(pools[i])))
            found[pid] = stored
        return found

    def delete_list(self, product_id: str) -> bool:
        """Remove the product's list and its entries in the rev sets of its members; True if it had one.

        ``rev:{product_id}`` (who lists this product) is kept: the caller refreshes those lists, which
        drops the entries.
        """
        with redis_errors(f"delete similar list of {product_id!r}"):
            removed = self._delete_script(
                keys=[self.keys.similar(product_id), self.keys.list_meta(product_id), self.keys.catalog_sequence],
                args=[self.keys.rev_prefix, product_id],
            )
        return int(removed) == 1

    def read_pools(self, ids: Sequence[str]) -> dict[str, set[str]]:
        """The pool each id's current list was ranked from (what rev: sets hold for it), for the ids
        with a list."""
        return {pid: set(pool_of(stored)) for pid, stored in self.read_lists(ids, with_pools=True).items()}

    def rev(self, product_id: str) -> set[str]:
        """The products whose current list holds ``product_id``."""
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
