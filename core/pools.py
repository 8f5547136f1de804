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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import orjson

from simstream.core.vector_store import Neighbor

# The bound of a pool that holds every candidate (no outsider): the lowest cosine.
COMPLETE: Final = -1.0
# Pool scores keep float32's precision (the vectors are float32): rounded once, by pool_entry, so float
# noise never beats the id tie-break (core/hybrid ranks at a finer precision, as the brute force does).
STORED_DECIMALS: Final = 7


@dataclass(frozen=True, slots=True)
class Score:
    """The scores of one pair: the dense cosine and the hybrid score the list is ranked by."""

    dense: float
    hybrid: float


class PoolEntry(NamedTuple):
    # A tuple, not a dataclass: every batch decodes thousands of pools of ~66 entries each.
    product_id: str
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
        return tuple(entry.product_id for entry in self.entries)

    def admits(self, dense: float) -> bool:
        """Would an outsider with this dense score enter?"""
        return self.complete or dense > self.bound


def pool_entry(product_id: str, dense: float, hybrid: float) -> PoolEntry:
    """An entry with its scores rounded to what is stored: a pool computed now and one read back rank
    alike, and equal scores are equal floats (the id breaks the tie), so orders need no rounding."""
    return PoolEntry(product_id, round(dense, STORED_DECIMALS), round(hybrid, STORED_DECIMALS))


def _dense_order(entry: PoolEntry) -> tuple[float, str]:
    return (-entry.dense, entry.product_id)


def pool_from_ranked(hits: Sequence[PoolEntry], *, asked: int, source_version: int) -> Pool:
    """The pool a search gives: the ``asked`` best candidates found (fewer: there are no others).

    The last score found is the bound: every product not found scores at most it.
    """
    entries = tuple(sorted(hits, key=_dense_order)[:asked])
    complete = len(hits) < asked
    return Pool(entries, COMPLETE if complete or not entries else entries[-1].dense, source_version)


def apply_changes(pool: Pool, changes: Mapping[str, Score | None], *, pool_size: int, cap: int) -> Pool | None:
    """The pool after these products' new scores (None: the product is gone or no longer a candidate).

    None when fewer than ``pool_size`` members are left and outsiders may exist: search again.
    """
    kept = {entry.product_id: entry for entry in pool.entries if entry.product_id not in changes}
    for product_id, score in changes.items():
        if score is None:
            continue
        was_member = any(entry.product_id == product_id for entry in pool.entries)
        if pool.admits(score.dense) or (was_member and score.dense >= pool.bound):
            kept[product_id] = pool_entry(product_id, score.dense, score.hybrid)
    entries = sorted(kept.values(), key=_dense_order)
    bound = pool.bound
    if len(entries) > cap:
        bound = max(bound, entries[cap].dense)
        entries = entries[:cap]
    if len(entries) < pool_size and bound > COMPLETE:
        return None
    return Pool(tuple(entries), bound, pool.source_version)


def ranked_items(pool: Pool, *, pool_size: int, top_k: int) -> list[Neighbor]:
    """The list: the top-K of the dense top-``pool_size`` members by hybrid score (ties by id)."""
    scored = sorted(pool.entries[:pool_size], key=lambda e: (-e.hybrid, e.product_id))
    return [Neighbor(entry.product_id, entry.hybrid) for entry in scored[:top_k]]


def encode_pool(pool: Pool) -> bytes:
    """The JSON kept in ``listmeta:{id}`` field ``pool``."""
    return orjson.dumps(
        {
            "source_version": pool.source_version,
            "bound": pool.bound,
            "entries": [tuple(entry) for entry in pool.entries],  # scores rounded at creation (pool_entry)
        }
    )


def decode_pool(raw: bytes | str | None) -> Pool | None:
    """A stored pool, or None when there is none or it is in an older format (rebuilt by a search)."""
    if raw is None:
        return None
    try:
        data: Any = orjson.loads(raw)
        entries = tuple(map(PoolEntry._make, data["entries"]))  # TypeError on an entry of another shape
        return Pool(entries, float(data["bound"]), int(data["source_version"]))
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
        return None
