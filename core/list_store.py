"""Each product's last emitted similar-items list in Redis, and the reverse index of list membership.

``similar:{id}`` holds the exact JSON emitted to the output topic (design.md §3, ``similar-items.v1``),
so a storefront reads a list with one GET. ``listver:{id}`` counts list versions (INCR, monotonic per
product, kept across deletes). ``rev:{n}`` is the set of products whose list holds ``n``. One Lua script
per product changes all of them together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import redis

from simstream.core.errors import StoreError
from simstream.core.redis_client import make_redis_client, redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import text
from simstream.core.redis_scripts import DELETE_LIST, WRITE_LIST
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


@dataclass(frozen=True, slots=True)
class StoredList:
    product_id: str
    list_version: int
    source_version: int
    model: str
    computed_at: datetime
    items: tuple[Neighbor, ...]
    payload: bytes  # the exact JSON stored at similar:{id}; emit these bytes as the record value


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
    """The score a new neighbour must reach to enter this list; -1 (anything) while it is short."""
    return stored.items[-1].score if len(stored.items) >= top_k else -1.0


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
        self._write_script = client.register_script(WRITE_LIST)
        self._delete_script = client.register_script(DELETE_LIST)

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis | None = None) -> ListStore:
        return cls(
            client if client is not None else make_redis_client(settings),
            prefix=settings.redis_prefix,
            top_k=settings.top_k,
        )

    def prepare(self, lists: Mapping[str, ListWrite | tuple[Sequence[Neighbor], int, str]]) -> dict[str, StoredList]:
        """Reserve each product's next list version (INCR, monotonic, unique across writers) and build
        the record to emit. Nothing becomes current: :meth:`commit` does that once it was delivered."""
        if not lists:
            return {}
        computed_at = self._clock()
        writes = {pid: ListWrite(*spec) for pid, spec in lists.items()}
        pipe = self._client.pipeline(transaction=False)
        for pid in writes:
            pipe.incr(self.keys.list_version(pid))
        with redis_errors(f"reserve {len(writes)} list version(s)"):
            versions = pipe.execute()
        return {
            pid: decode_list(list_payload(pid, write, int(version), computed_at))
            for (pid, write), version in zip(writes.items(), versions, strict=True)
        }

    def commit(self, lists: Iterable[StoredList]) -> list[bool]:
        """Make prepared lists current (``similar:``, ``rev:``), in one pipeline; False where a newer
        list was already current."""
        pipe = self._client.pipeline(transaction=False)
        count = 0
        for stored in lists:
            count += 1
            self._write_script(
                keys=[self.keys.similar(stored.product_id), self.keys.product(stored.product_id)],
                args=[
                    self.keys.rev_prefix,
                    stored.product_id,
                    stored.payload,
                    stored.list_version,
                    admission_threshold(stored, self._top_k),
                    *(n.product_id for n in stored.items),
                ],
                client=pipe,
            )
        if not count:
            return []
        with redis_errors(f"write {count} similar list(s)"):
            return [int(applied) == 1 for applied in pipe.execute()]

    def write_lists(
        self, lists: Mapping[str, ListWrite | tuple[Sequence[Neighbor], int, str]]
    ) -> dict[str, StoredList]:
        """prepare + commit: for callers that have nothing to deliver in between."""
        prepared = self.prepare(lists)
        self.commit(prepared.values())
        return prepared

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

    def delete_list(self, product_id: str) -> bool:
        """Remove the product's list and its entries in the rev sets of its members; True if it had one.

        ``rev:{product_id}`` (who lists this product) is kept: the caller refreshes those lists, which
        drops the entries.
        """
        with redis_errors(f"delete similar list of {product_id!r}"):
            removed = self._delete_script(keys=[self.keys.similar(product_id)], args=[self.keys.rev_prefix, product_id])
        return int(removed) == 1

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
