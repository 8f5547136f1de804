"""The lists one batch alters, updated from the batch's scores: a fixed number of round trips per batch.

For the products whose vector the batch changed (``moved``) and the ones it deleted (``gone``):

1. discover (one pipeline): each moved product's pool state, then its KNN (its own new pool, and the
   nearby products whose pool it may enter, with their bound ``kth``); the rev sets of moved and gone
   products (the pools holding them); the lowest bound of any pool;
2. reverse ranges (one pipeline, only when needed): vector range searches per band of bounds, for the
   products far down a moved product's ranking whose own pool is weak enough to admit it;
3. read (one pipeline): the pool state, vector and text of every affected list's owner, and the
   stored version of each moved product (one written again since is left to its newer writer);
4. score: one matrix product of the moved vectors against the owners' vectors (core/scoring); each
   pool is updated from its pairs' new scores alone (core/pools);
5. search (one pipeline, rare): the pools that ran out of slack, or whose owner's vector moved;
6. PREPARE (one pipeline): compare-and-set of every pool, the lists to emit versioned
   (core/list_store). A pool another worker moved meanwhile, or that a member enters at another
   version than the one now stored, is read and recomputed again (3-6).

A list touched by several products of the batch is computed and written once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis

from simstream.core.generations import GenerationWatch
from simstream.core.hybrid import LexicalProfile, profile_pair_score, text_profile
from simstream.core.list_store import ListState, ListStore, Mode, PoolProposal, Prepared, StoredList
from simstream.core.pools import COMPLETE, Pool, Score, apply_changes, pool_entry, pool_from_ranked, ranked_items
from simstream.core.query_syntax import FULL_POOLS_QUERY
from simstream.core.redis_client import command, redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import parse_search, text
from simstream.core.scoring import dense_scores
from simstream.core.similarity import SimilarityPolicy, lists_equal
from simstream.core.vector_store import RANGE_RESULTS_CAP, KnnFilter, Vector, knn_query, range_query


class ScoringMoved(Exception):
    """The term-statistics snapshot (core/terms) or the live model generation (core/generations)
    changed while a batch scored with the old one: every list is being rebuilt in bulk."""


# Rounds of recomputing the pools another worker changed meanwhile within one batch.
LIST_ATTEMPTS = 4
# Bands of the reverse range search: narrower bands return fewer false candidates, more bands cost
# more queries; pools with the bound COMPLETE admit anything and are found by the KNN's reach.
MAX_BANDS = 8
MIN_BAND_WIDTH = 0.05


@dataclass(frozen=True, slots=True)
class Owner:
    """What a list is computed from: its product's vector, version, text and category."""

    vector: Vector
    version: int
    text: str
    category: str


@dataclass(slots=True)
class RefreshCounts:
    touched: int = 0  # lists examined (updated from scores, or searched)
    searched: int = 0  # lists recomputed from a KNN: moved owners, and pools out of slack
    conflicts: int = 0  # pools another worker moved meanwhile (read and recomputed)
    round_trips: int = 0


@dataclass(slots=True)
class RefreshOutcome:
    lists: list[StoredList] = field(default_factory=list)
    counts: RefreshCounts = field(default_factory=RefreshCounts)


def admission_bands(lowest: float | None, highest: float) -> list[tuple[float, float]]:
    """[low, high] bound bands covering [lowest, highest]; none when no bound is that low."""
    if lowest is None or lowest > highest:
        return []
    count = max(1, min(MAX_BANDS, math.ceil((highest - lowest) / MIN_BAND_WIDTH)))
    width = (highest - lowest) / count
    return [(lowest + i * width, highest if i == count - 1 else lowest + (i + 1) * width) for i in range(count)]


def _admission_bound(pool: Pool | None) -> float:
    """The score an outsider must exceed to enter: none enters a pool that is missing (it is searched)."""
    if pool is None:
        return math.inf
    return -math.inf if pool.complete else pool.bound


def _fold(category: str) -> str:
    return category.strip().lower()


@dataclass(frozen=True, slots=True)
class _Hit:
    product_id: str
    dense: float
    kth: float | None
    text: str
    version: int  # the product version whose vector was scored; -1 not returned: PREPARE refuses it


class PoolRefresher:
    """Turns a batch's changed vectors and deletes into the lists to emit (prepared, not committed)."""

    def __init__(
        self,
        client: redis.Redis,
        lists: ListStore,
        policy: SimilarityPolicy,
        *,
        index_name: str,
        model: str,
        fanout: int = 0,
        epsilon: float = 1e-4,
        device: str = "cpu",
        generations: GenerationWatch | None = None,
    ) -> None:
        self._client = client
        self._generations = generations
        self._lists = lists
        self._keys = lists.keys
        self._policy = policy
        self._index = index_name
        self._model = model
        self._reach = max(policy.pool_cap, fanout)  # KNN size: the own pool and the admission candidates
        # The lexical profiles of the texts one refresh scores, by text (a str caches its hash): thousands
        # of pairs per batch share a few hundred texts. Cleared per refresh and per snapshot switch.
        self._profiles: dict[str, LexicalProfile] = {}
        self._epsilon = epsilon
        self._device = device

    # --- the batch ---------------------------------------------------------------------------------

    def refresh(
        self,
        moved: Mapping[str, Owner],
        gone: Sequence[str],
        *,
        own_only: Sequence[str] = (),
        reverse: bool = True,
        emit_all: bool = False,
        between: Callable[[], None] | None = None,
    ) -> RefreshOutcome:
        """Every list ``moved`` and ``gone`` can alter, prepared; ``own_only``: products whose own list
        is emitted again from its pool (a metadata-only update); ``reverse`` False: own lists only.
        ``between``: called after each round trip (see :meth:`Pipeline.process`)."""
        outcome = RefreshOutcome()
        counts = outcome.counts
        pause = between or _nothing
        self._profiles.clear()
        own_states, own_hits, holders, deleted_holders, lowest = self._discover(
            moved, [*gone] if reverse else [], counts
        )
        pause()
        affected: set[str] = set(own_only)
        if reverse:
            affected |= holders
            affected |= self._admitting(moved, own_hits, lowest, counts)
            pause()
        affected -= set(moved) | set(gone)

        proposals: dict[str, PoolProposal] = {}
        for pid, owner in moved.items():
            proposals[pid] = self._searched_proposal(
                pid, owner, own_states[pid], own_hits[pid], own=True, emit_all=emit_all
            )
        counts.searched += len(moved)
        pending = sorted(affected)
        forced_own = set(own_only)
        ready: dict[str, StoredList] = {}
        for _attempt in range(LIST_ATTEMPTS):
            if pending:
                proposals.update(self._updated(pending, moved, gone, forced_own, emit_all, counts))
                pause()
            if not proposals:
                break
            prepared = self._prepare(proposals, counts, deleted_holders)
            deleted_holders = {}  # remembered by the first PREPARE round trip
            pause()
            ready.update(prepared.ready)
            counts.conflicts += len(prepared.retry)
            retry_own = {pid: moved[pid] for pid in prepared.retry if pid in moved}
            proposals = self._searched(retry_own, counts, own=True, emit_all=emit_all)
            pending = sorted(pid for pid in prepared.retry if pid not in moved)
        outcome.lists = list(ready.values())
        return outcome

    def use_policy(self, policy: SimilarityPolicy) -> None:
        """Score with ``policy`` from now on (a new term-statistics snapshot; same sizes)."""
        self._policy = policy
        self._profiles.clear()

    def _profile(self, text: str) -> LexicalProfile:
        found = self._profiles.get(text)
        if found is None:
            found = self._profiles[text] = text_profile(text, self._policy.terms)
        return found

    def _pair_score(self, owner: Owner, other_text: str, dense: float) -> float:
        """The hybrid score of the owner with another product's text (core/hybrid)."""
        weights = self._policy.weights
        if weights.is_dense_only:
            return dense
        return profile_pair_score(self._profile(owner.text), self._profile(other_text), dense, weights)

    def _prepare(
        self, proposals: Mapping[str, PoolProposal], counts: RefreshCounts, deleted_holders: Mapping[str, set[str]]
    ) -> Prepared:
        counts.round_trips += 1
        # terms:current and the model generations are read with the PREPAREs: if either moved, these
        # pools may hold scores of the old snapshot or model, which the bulk pass the switch asked for
        # must recompute (core/terms, core/generations).
        watch = [self._keys.terms_current] + ([] if self._generations is None else [self._generations.key])
        prepared = self._lists.prepare(proposals, watch=watch, deleted_holders=deleted_holders)
        expected = None if self._policy.terms is None else self._policy.terms.version
        if prepared.watched[0] != expected:
            raise ScoringMoved(f"the term statistics moved from {expected} to {prepared.watched[0]}")
        if self._generations is not None and prepared.watched[1] != self._generations.expected:
            moved = f"{self._generations.expected} to {prepared.watched[1]}"
            raise ScoringMoved(f"the model generations moved from {moved}")
        return prepared

    # --- 1. discover ---------------------------------------------------------------------------------

    def _discover(
        self, moved: Mapping[str, Owner], gone: Sequence[str], counts: RefreshCounts
    ) -> tuple[dict[str, ListState], dict[str, list[_Hit]], set[str], dict[str, set[str]], float | None]:
        """Per moved product its pool state and KNN hits; the lists holding a moved or gone product
        (``rev:``, and ``dropped:``: the lists an earlier run of its delete took it out of, re-emitted
        when this is a replay); per gone product the lists now holding it; the lowest bound."""
        ids = list(moved)
        if not ids and not gone:
            return {}, {}, set(), {}, None
        pipe = self._client.pipeline(transaction=False)
        self._lists.queue_state_reads(pipe, ids)  # before the searches: compare-and-set order
        for pid in ids:
            self._queue_knn(pipe, moved[pid])
        watched = [*ids, *gone]
        for pid in watched:
            pipe.smembers(self._keys.rev(pid))
        for pid in watched:  # a moved one too: a replayed delete outranked by a re-create in its batch
            pipe.smembers(self._keys.dropped(pid))
        if ids:
            command(pipe,
                "FT.SEARCH", self._index, FULL_POOLS_QUERY,
                "SORTBY", "kth", "ASC", "RETURN", 1, "kth", "LIMIT", 0, 1, "DIALECT", 2,
            )  # fmt: skip
        counts.round_trips += 1
        with redis_errors(f"discover the lists {len(ids)} change(s) and {len(gone)} delete(s) alter"):
            replies = pipe.execute()
        states = self._lists.parse_states(ids, replies[: 2 * len(ids)])
        rest = replies[2 * len(ids) :]
        hits = {pid: self._hits(pid, reply) for pid, reply in zip(ids, rest[: len(ids)], strict=True)}
        rev_replies = rest[len(ids) : len(ids) + 2 * len(watched)]  # rev: of each, then dropped: of each
        holders = {text(member) for members in rev_replies for member in members}
        deleted_holders = {
            pid: {text(member) for member in members}
            for pid, members in zip(gone, rev_replies[len(ids) : len(watched)], strict=True)
        }
        lowest: float | None = None
        if ids:
            found = parse_search(rest[-1]).hits
            lowest = float(found[0].fields["kth"]) if found else None
        return states, hits, holders, deleted_holders, lowest

    def _queue_knn(self, pipe: Any, owner: Owner) -> None:
        fetch = self._reach + 1  # the product itself is usually its own nearest neighbour
        command(pipe,
            "FT.SEARCH", self._index, knn_query(fetch, self._filter(owner)),
            "PARAMS", 2, "vec", _blob(owner.vector),
            "SORTBY", "dist", "RETURN", 4, "dist", "kth", "text", "version", "LIMIT", 0, fetch, "DIALECT", 2,
        )  # fmt: skip

    def _filter(self, owner: Owner) -> KnnFilter | None:
        return KnnFilter(category=owner.category) if self._policy.same_category_only and owner.category else None

    def _hits(self, own_id: str, reply: Any) -> list[_Hit]:
        found = []
        for hit in parse_search(reply).hits:
            pid = self._keys.product_id_of(hit.key)
            if pid == own_id:
                continue
            kth = hit.fields.get("kth")
            found.append(
                _Hit(
                    pid,
                    1.0 - float(hit.fields["dist"]),
                    None if kth is None else float(kth),
                    hit.fields.get("text", ""),
                    int(hit.fields.get("version", -1)),
                )
            )
        return found[: self._reach]

    def _searched_proposal(
        self, pid: str, owner: Owner, state: ListState, hits: Sequence[_Hit], *, own: bool, emit_all: bool
    ) -> PoolProposal:
        """The proposal of a pool recomputed from a KNN's hits (their versions travel with it)."""
        cap = self._policy.pool_cap
        entries = [
            pool_entry(hit.product_id, hit.dense, self._pair_score(owner, hit.text, hit.dense)) for hit in hits[:cap]
        ]
        pool = pool_from_ranked(entries, asked=cap, source_version=owner.version)
        versions = {hit.product_id: hit.version for hit in hits[:cap]}
        return self._proposal(pid, owner, state, pool, versions, own=own, emit_all=emit_all)

    # --- 2. reverse ranges -------------------------------------------------------------------------

    def _admitting(
        self, moved: Mapping[str, Owner], hits: Mapping[str, list[_Hit]], lowest: float | None, counts: RefreshCounts
    ) -> set[str]:
        """The products whose pool a moved product may now enter: its score reaches their bound."""
        found: dict[str, list[_Hit]] = {pid: list(hits.get(pid, [])) for pid in moved}
        # Similarity is symmetric, nearness is not: a product Q far down P's ranking can still admit P
        # when Q's own pool is weak. Q beyond P's reach scores at most the reach's last score, and
        # admits P only when that is above Q's bound: one range search per band of bounds.
        searches: list[tuple[str, float, KnnFilter]] = []
        for pid, owner in moved.items():
            near = hits.get(pid, [])
            if len(near) < self._reach:
                continue  # the KNN reached every candidate
            category = owner.category if self._policy.same_category_only and owner.category else None
            for low, high in admission_bands(lowest, near[-1].dense):
                searches.append((pid, low, KnnFilter(category=category, min_kth=low, max_kth=high)))
        if searches:
            pipe = self._client.pipeline(transaction=False)
            for pid, low, flt in searches:
                radius = min(2.0, max(0.0, 1.0 - low))  # COSINE distance = 1 - cosine, in [0, 2]
                command(pipe,
                    "FT.SEARCH", self._index, range_query(flt),
                    "PARAMS", 4, "radius", repr(radius), "vec", _blob(moved[pid].vector),
                    "SORTBY", "dist", "RETURN", 2, "dist", "kth", "LIMIT", 0, RANGE_RESULTS_CAP, "DIALECT", 2,
                )  # fmt: skip
            counts.round_trips += 1
            with redis_errors(f"run {len(searches)} reverse range search(es)"):
                replies = pipe.execute()
            for (pid, _, _), reply in zip(searches, replies, strict=True):
                found[pid].extend(self._hits(pid, reply) if reply else [])
        admitting: set[str] = set()
        for candidates in found.values():
            for hit in candidates:
                if hit.kth is None or hit.kth <= COMPLETE or hit.dense > hit.kth:
                    admitting.add(hit.product_id)
        return admitting

    # --- 3-5. read, score, search ------------------------------------------------------------------

    def _updated(
        self,
        ids: Sequence[str],
        moved: Mapping[str, Owner],
        gone: Sequence[str],
        forced_own: set[str],
        emit_all: bool,
        counts: RefreshCounts,
    ) -> dict[str, PoolProposal]:
        """Proposals for these lists: their pools updated from the batch's scores, or searched again."""
        states, owners, stored = self._read(ids, list(moved), counts)
        present = [pid for pid in ids if pid in owners]
        counts.touched += len(present)
        # A moved product written again (or deleted) since this batch wrote it is left to its newer
        # writer, which finds the pools holding it through rev:; its score from here would be refused.
        moved_ids = [pid for pid in moved if stored.get(pid) == moved[pid].version]
        scores = (
            dense_scores(
                np.stack([moved[p].vector for p in moved_ids]),
                np.stack([owners[q].vector for q in present]),
                device=self._device,
            )
            if moved_ids and present
            else np.zeros((len(moved_ids), len(present)), dtype=np.float32)
        )
        gone_set = set(gone)
        moved_versions = {pid: moved[pid].version for pid in moved_ids}  # the only ones that enter
        row_of = {pid: row for row, pid in enumerate(moved_ids)}
        moved_set = frozenset(row_of)
        # Which moved products each pool admits as outsiders, all pools at once: a score above the bound.
        admitted = (scores > np.array([_admission_bound(states[q].pool) for q in present])).T
        columns: list[list[float]] = scores.T.tolist()
        proposals: dict[str, PoolProposal] = {}
        search: dict[str, Owner] = {}
        for column, qid in enumerate(present):
            owner, state = owners[qid], states[qid]
            pool = state.pool
            if pool is None or pool.source_version != owner.version:
                search[qid] = owner  # no pool yet, or computed for an older vector of its owner
                continue
            members = state.members
            changes: dict[str, Score | None] = {pid: None for pid in gone_set & members}
            rows = set(np.flatnonzero(admitted[column]).tolist())
            rows.update(row_of[pid] for pid in members & moved_set)
            for row in sorted(rows):
                pid = moved_ids[row]
                if not self._candidate(owner, moved[pid]):
                    if pid in members:
                        changes[pid] = None
                    continue
                dense = columns[column][row]
                changes[pid] = Score(dense, self._pair_score(owner, moved[pid].text, dense))
            updated = apply_changes(pool, changes, pool_size=self._policy.pool_size, cap=self._policy.pool_cap)
            if updated is None:
                search[qid] = owner  # the slack ran out
                continue
            proposal = self._proposal(
                qid, owner, state, updated, moved_versions, own=qid in forced_own, emit_all=emit_all
            )
            if not changes and proposal.mode == "same":
                continue  # a candidate only by its lagging kth: pool and list stay as they are
            proposals[qid] = proposal
        proposals.update(self._searched(search, counts, own=False, emit_all=emit_all, forced=forced_own))
        return proposals

    def _read(
        self, ids: Sequence[str], moved: Sequence[str], counts: RefreshCounts
    ) -> tuple[dict[str, ListState], dict[str, Owner], dict[str, int]]:
        """The lists' states and owners, and the stored version of each moved product that exists."""
        pipe = self._client.pipeline(transaction=False)
        self._lists.queue_state_reads(pipe, ids)  # before the vectors: compare-and-set order
        queue_owner_reads(pipe, self._keys, ids)
        for pid in moved:
            pipe.hget(self._keys.product(pid), "version")
        counts.round_trips += 1
        with redis_errors(f"read {len(ids)} list(s) to update"):
            replies = pipe.execute()
        states = self._lists.parse_states(ids, replies[: 2 * len(ids)])
        owners = parse_owners(ids, replies[2 * len(ids) : 3 * len(ids)])
        versions = replies[3 * len(ids) :]
        stored = {pid: int(version) for pid, version in zip(moved, versions, strict=True) if version is not None}
        return states, owners, stored

    def read_owners(self, ids: Sequence[str]) -> dict[str, Owner]:
        """The stored vector, version, text and category of the ids that exist."""
        if not ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        queue_owner_reads(pipe, self._keys, ids)
        with redis_errors(f"read {len(ids)} product(s)"):
            return parse_owners(ids, pipe.execute())

    def _searched(
        self,
        owners: Mapping[str, Owner],
        counts: RefreshCounts,
        *,
        own: bool,
        emit_all: bool,
        forced: set[str] | None = None,
    ) -> dict[str, PoolProposal]:
        """Proposals for pools recomputed from a KNN (the state read first: compare-and-set order)."""
        if not owners:
            return {}
        ids = list(owners)
        pipe = self._client.pipeline(transaction=False)
        self._lists.queue_state_reads(pipe, ids)
        for pid in ids:
            self._queue_knn(pipe, owners[pid])
        counts.round_trips += 1
        counts.searched += len(ids)
        with redis_errors(f"search {len(ids)} pool(s) again"):
            replies = pipe.execute()
        states = self._lists.parse_states(ids, replies[: 2 * len(ids)])
        proposals = {}
        for pid, reply in zip(ids, replies[2 * len(ids) :], strict=True):
            is_own = own or (forced is not None and pid in forced)
            proposals[pid] = self._searched_proposal(
                pid, owners[pid], states[pid], self._hits(pid, reply), own=is_own, emit_all=emit_all
            )
        return proposals

    def _candidate(self, owner: Owner, other: Owner) -> bool:
        """May ``other`` be in ``owner``'s list (same category when the policy says so)?"""
        if not self._policy.same_category_only or not _fold(owner.category):
            return True
        return _fold(other.category) == _fold(owner.category)

    def _proposal(
        self,
        pid: str,
        owner: Owner,
        state: ListState,
        pool: Pool,
        member_versions: Mapping[str, int],
        *,
        own: bool,
        emit_all: bool,
    ) -> PoolProposal:
        return list_proposal(
            owner,
            state,
            pool,
            member_versions,
            self._policy,
            self._policy.scoring_id(self._model),
            epsilon=self._epsilon,
            own=own,
            emit_all=emit_all,
        )


def list_proposal(
    owner: Owner,
    state: ListState,
    pool: Pool,
    member_versions: Mapping[str, int],
    policy: SimilarityPolicy,
    model: str,
    *,
    epsilon: float,
    own: bool,
    emit_all: bool,
) -> PoolProposal:
    """The proposal of a recomputed pool: the list ranked from it, emitted when it changed (``own``: always,
    the owner's version moved; ``emit_all``: always, a replay whose first records may be lost).
    ``member_versions``: the product version each member's score was computed from."""
    items = policy.keep(ranked_items(pool, pool_size=policy.pool_size, top_k=policy.top_k))
    current = state.current
    mode: Mode = "forced" if emit_all else "emit"
    if (
        not own
        and not emit_all
        and current is not None
        and current.source_version == owner.version
        and current.model == model
        and lists_equal(current.items, items, epsilon)
    ):
        mode = "same"
    return PoolProposal(state, pool, items, owner.version, model, mode=mode, member_versions=member_versions)


def queue_owner_reads(pipe: Any, keys: RedisKeys, ids: Sequence[str]) -> None:
    """Queue one HMGET per id of what a list is computed from (see :func:`parse_owners`)."""
    for pid in ids:
        pipe.hmget(keys.product(pid), ["embedding", "version", "text", "category"])


def parse_owners(ids: Sequence[str], replies: Sequence[Any]) -> dict[str, Owner]:
    """The owners of the ids that exist, from the replies of :func:`queue_owner_reads`."""
    owners: dict[str, Owner] = {}
    for pid, (blob, version, body, category) in zip(ids, replies, strict=True):
        if blob is None or version is None:
            continue  # deleted meanwhile: its tombstone covers it
        owners[pid] = Owner(
            np.frombuffer(blob, dtype="<f4").astype(np.float32),
            int(version),
            "" if body is None else text(body),
            "" if category is None else text(category),
        )
    return owners


def _nothing() -> None:
    return None


def _blob(vector: Vector) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()
