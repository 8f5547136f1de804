"""A list's candidate pool, kept exact incrementally: pure logic, no I/O (ARCHITECTURE.md, "Pools").

A product's list is the top-K by hybrid score of its dense top-``pool_size`` candidates
(core/similarity). The pool keeps more than that: the dense top-m for some m between ``pool_size`` and
``pool_size + slack``, with each member's dense and hybrid score, and a ``bound``: no product outside the
pool scores above it (every member scores at least it). That invariant is all an update needs:

- a member whose score changed stays when it still scores above the bound, else it leaves (and m drops);
- an outsider enters when it scores above the bound;
- a deleted member leaves;
- past ``pool_size + slack`` members the lowest leave, and the bound rises to the best of them.

So a change of product P alters the pool of Q from the one score s(P, Q), and a search is needed only
when m falls below ``pool_size`` (the slack ran out). A pool that holds every candidate there is has
the bound COMPLETE: anything enters, and losing members never needs a search.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final

import orjson

from simstream.core.vector_types import Neighbor, neighbors

# The bound of a pool that holds every candidate (no outsider): the lowest cosine.
COMPLETE: Final = -1.0
# Pool scores keep float32's precision (the vectors are float32): rounded once, by pool_entry, so float
# noise never beats the id tie-break (core/hybrid ranks at a finer precision, as the brute force does).
STORED_DECIMALS: Final = 7

# One member: (product id, dense score, hybrid score). A plain tuple, not a class: every batch decodes,
# orders and encodes thousands of pools of ~66 entries, and tuples do that in C (orjson, sort, map).
PoolEntry = tuple[str, float, float]
_ID: Final = itemgetter(0)
_DENSE: Final = itemgetter(1)
_HYBRID: Final = itemgetter(2)
_ID_HYBRID: Final = itemgetter(0, 2)


@dataclass(frozen=True, slots=True)
class Score:
    """The scores of one pair: the dense cosine and the hybrid score the list is ranked by."""

    dense: float
    hybrid: float


@dataclass(frozen=True, slots=True)
class Pool:
    entries: tuple[PoolEntry, ...]  # best dense score first, ties by product id
    bound: float  # no outsider scores above it; COMPLETE: there is no outsider
    source_version: int  # the owner's product version whose vector the scores were computed with

    @property
    def complete(self) -> bool:
        return self.bound <= COMPLETE

    def members(self) -> tuple[str, ...]:
        return tuple(map(_ID, self.entries))

    def admits(self, dense: float) -> bool:
        """Would an outsider with this dense score enter?"""
        return self.complete or dense > self.bound


def pool_entry(product_id: str, dense: float, hybrid: float) -> PoolEntry:
    """An entry with its scores rounded to what is stored: a pool computed now and one read back rank
    alike, and equal scores are equal floats (the id breaks the tie), so orders need no rounding."""
    return (product_id, round(dense, STORED_DECIMALS), round(hybrid, STORED_DECIMALS))


def _dense_key(entry: PoolEntry) -> tuple[float, str]:
    return (-entry[1], entry[0])


def _best_first(entries: Sequence[PoolEntry], score: itemgetter[Any]) -> list[PoolEntry]:
    """Highest ``score`` first, ties by product id: sorts on C-level keys, not a Python key function;
    by id too only when two scores tie (rare)."""
    ordered = sorted(entries, key=score, reverse=True)
    if len(set(map(score, entries))) < len(entries):
        ordered = sorted(entries, key=_ID)
        ordered.sort(key=score, reverse=True)  # stable, reverse too: equal scores stay in id order
    return ordered


def dense_ordered(entries: Iterable[PoolEntry]) -> list[PoolEntry]:
    """Best dense score first, ties by product id."""
    return _best_first(list(entries), _DENSE)


def pool_from_ranked(hits: Iterable[PoolEntry], *, asked: int, source_version: int) -> Pool:
    """The pool a search gives: the ``asked`` best candidates found (fewer: there are no others).

    The last score found is the bound: every product not found scores at most it.
    """
    found = dense_ordered(hits)
    entries = tuple(found[:asked])
    complete = len(found) < asked
    return Pool(entries, COMPLETE if complete or not entries else entries[-1][1], source_version)


def apply_changes(pool: Pool, changes: Mapping[str, Score | None], *, pool_size: int, cap: int) -> Pool | None:
    """The pool after these products' new scores (None: the product is gone or no longer a candidate).

    None when fewer than ``pool_size`` members are left and outsiders may exist: search again.
    """
    current = pool.entries
    members = changes.keys() & set(map(_ID, current))
    entries = [entry for entry in current if entry[0] not in changes] if members else list(current)
    for product_id, score in changes.items():
        if score is None:
            continue
        if pool.admits(score.dense) or (product_id in members and score.dense >= pool.bound):
            insort(entries, pool_entry(product_id, score.dense, score.hybrid), key=_dense_key)
    bound = pool.bound
    if len(entries) > cap:
        bound = max(bound, entries[cap][1])
        del entries[cap:]
    if len(entries) < pool_size and bound > COMPLETE:
        return None
    return Pool(tuple(entries), bound, pool.source_version)


def ranked_items(pool: Pool, *, pool_size: int, top_k: int) -> list[Neighbor]:
    """The list: the top-K of the dense top-``pool_size`` members by hybrid score (ties by id)."""
    scored = _best_first(pool.entries[:pool_size], _HYBRID)
    return neighbors(map(_ID_HYBRID, scored[:top_k]))


def encode_pool(pool: Pool) -> bytes:
    """The JSON kept in ``listmeta:{id}`` field ``pool``."""
    return orjson.dumps(
        {
            "source_version": pool.source_version,
            "bound": pool.bound,
            "entries": pool.entries,  # scores rounded at creation (pool_entry)
        }
    )


def decode_pool(raw: bytes | str | None) -> Pool | None:
    """A stored pool, or None when there is none or it is in an older format (rebuilt by a search)."""
    if raw is None:
        return None
    try:
        data: Any = orjson.loads(raw)
        entries = tuple(map(tuple, data["entries"]))  # TypeError when an entry is not an array
        if entries and set(map(len, entries)) != {3}:
            return None
        return Pool(entries, float(data["bound"]), int(data["source_version"]))
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
        return None
