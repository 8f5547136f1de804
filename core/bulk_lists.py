"""Every product's pool and list at once, from exact matrix products in blocks: a catalog's first load.

Streaming a whole catalog in through the incremental path (core/pool_refresh) recomputes each list
again and again as the catalog grows around it. A first load (an empty index filled by a backlog, or
``simstream load FILE``) instead writes the products first and then computes every pool in one pass:

1. read (pipelined, in chunks): every product's list state first, then its vector, version, text and
   category (compare-and-set order: a pool's revision is read before anything it is computed from);
   the term-statistics snapshot is the current one, or, when there is none (a first load), counted
   over the texts just read and made current (core/terms);
2. score: each product's exact dense top-``pool_cap`` over the whole catalog, block by block
   (core/scoring.block_top_k: numpy on the CPU, torch on a GPU), in its category when the policy says so;
3. rank: the pool (core/pools) and the list from it, with the same hybrid score and proposal rule as
   the incremental path, so the lists are the ones it would emit;
4. PREPARE, emit, COMMIT, a chunk at a time (core/list_store): lists that did not change are not
   emitted; a pool another worker moved meanwhile is computed again from a fresh read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from simstream.core.errors import StoreError
from simstream.core.hybrid import profile_tokens, rerank_profiles, text_profile
from simstream.core.list_store import ListState, ListStore, PoolProposal, StoredList
from simstream.core.pool_refresh import LIST_ATTEMPTS, Owner, list_proposal, parse_owners, queue_owner_reads
from simstream.core.pools import pool_entry, pool_from_ranked
from simstream.core.redis_client import redis_errors
from simstream.core.scoring import block_top_k
from simstream.core.similarity import SimilarityPolicy
from simstream.core.terms import TermsStore, TermStats

# Products read per pipelined round trip, and pools prepared (then emitted and committed) per chunk.
READ_CHUNK = 2048
PREPARE_CHUNK = 512

# Receives each chunk of prepared lists and returns once they are delivered (the worker's sink:
# produce, then flush); None: the lists are made current without being emitted (tools, benchmarks).
Emitter = Callable[[Sequence[StoredList]], None]


class ProductIds(Protocol):
    """What build_all_lists needs of the vector store: the ids of every indexed product."""

    def indexed_product_ids(self) -> list[str]: ...


@dataclass(slots=True)
class BulkReport:
    products: int = 0  # products whose pool was computed
    emitted: int = 0  # lists that changed: prepared, emitted and committed
    unchanged: int = 0  # lists equal to their current one (pool stored, nothing emitted)
    conflicts: int = 0  # pools another worker moved meanwhile, computed again
    rounds: int = 0
    read_s: float = 0.0
    score_s: float = 0.0
    rank_s: float = 0.0
    write_s: float = 0.0  # PREPARE, emission and COMMIT
    finished: bool = True  # False: a first load's batches wrote meanwhile, another pass follows
    terms: str | None = None  # the term-statistics snapshot the lists were scored with

    @property
    def seconds(self) -> float:
        return self.read_s + self.score_s + self.rank_s + self.write_s


def build_all_lists(
    store: ProductIds,
    lists: ListStore,
    policy: SimilarityPolicy,
    model_id: str,
    *,
    device: str = "cpu",
    emit: Emitter | None = None,
    epsilon: float = 1e-4,
    terms: TermsStore | None = None,
) -> BulkReport:
    """Compute, prepare, emit (``emit``) and commit every product's pool and list; see the module doc.
    ``terms`` None: score with ``policy.terms`` as it is (tools, benchmarks)."""
    report = BulkReport()
    wanted: set[str] | None = None  # None: every product; later rounds: the pools that conflicted
    for _round in range(LIST_ATTEMPTS):
        report.rounds += 1
        started = time.perf_counter()
        ids = sorted(store.indexed_product_ids())
        states, owners = _read(lists, ids)
        ids = [pid for pid in ids if pid in owners]  # deleted between the listing and the read
        if terms is not None:
            policy = replace(policy, terms=_snapshot(terms, [owners[pid].text for pid in ids]))
        report.terms = None if policy.terms is None else policy.terms.version
        report.read_s += time.perf_counter() - started
        rows = list(range(len(ids))) if wanted is None else [i for i, pid in enumerate(ids) if pid in wanted]
        proposals = _proposals(ids, rows, states, owners, policy, model_id, device, epsilon, report)
        if wanted is None:
            report.products = len(rows)
        started = time.perf_counter()
        retry = _write(lists, proposals, emit, report)
        report.write_s += time.perf_counter() - started
        if not retry:
            return report
        report.conflicts += len(retry)
        wanted = set(retry)
    raise StoreError(f"{len(wanted or ())} pool(s) kept changing under the bulk load after {LIST_ATTEMPTS} rounds")


def _read(lists: ListStore, ids: Sequence[str]) -> tuple[dict[str, ListState], dict[str, Owner]]:
    """Every list state, then every owner: no pool's revision is read after what it is computed from."""
    client = lists.client
    states: dict[str, ListState] = {}
    owners: dict[str, Owner] = {}
    for start in range(0, len(ids), READ_CHUNK):
        chunk = ids[start : start + READ_CHUNK]
        pipe = client.pipeline(transaction=False)
        lists.queue_state_reads(pipe, chunk)
        with redis_errors(f"read {len(chunk)} list state(s)"):
            states.update(lists.parse_states(chunk, pipe.execute()))
    for start in range(0, len(ids), READ_CHUNK):
        chunk = ids[start : start + READ_CHUNK]
        pipe = client.pipeline(transaction=False)
        queue_owner_reads(pipe, lists.keys, chunk)
        with redis_errors(f"read {len(chunk)} product(s)"):
            owners.update(parse_owners(chunk, pipe.execute()))
    return states, owners


def _snapshot(terms: TermsStore, texts: Sequence[str]) -> TermStats:
    """The current snapshot; none yet (a first load): the one of these texts, made current."""
    current = terms.current()
    return current if current is not None else terms.adopt(TermStats.of(map(profile_tokens, texts)))


def category_groups(categories: Sequence[str]) -> npt.NDArray[np.int64]:
    """One code per product for block_top_k: equal folded categories share a code; none is -1 (any)."""
    codes: dict[str, int] = {}
    folded = [category.strip().lower() for category in categories]
    return np.array([codes.setdefault(c, len(codes)) if c else -1 for c in folded], dtype=np.int64)


def _proposals(
    ids: Sequence[str],
    rows: Sequence[int],
    states: dict[str, ListState],
    owners: dict[str, Owner],
    policy: SimilarityPolicy,
    model_id: str,
    device: str,
    epsilon: float,
    report: BulkReport,
) -> dict[str, PoolProposal]:
    if not ids or not rows:
        return {}
    started = time.perf_counter()
    matrix = np.stack([owners[pid].vector for pid in ids])
    groups = category_groups([owners[pid].category for pid in ids]) if policy.same_category_only else None
    # The catalog is scored against itself in full (each row needs every column), then rows are picked.
    top = block_top_k(matrix, policy.pool_cap, groups=groups, device=device)
    report.score_s += time.perf_counter() - started
    started = time.perf_counter()
    cap = policy.pool_cap
    scoring, terms = policy.scoring_id(model_id), policy.terms
    proposals: dict[str, PoolProposal] = {}
    for row in rows:
        pid = ids[row]
        owner = owners[pid]
        found = top.columns[row] >= 0
        columns = top.columns[row][found]
        dense = top.scores[row][found].astype(np.float64)
        members = [ids[column] for column in columns]
        hybrid = rerank_profiles(
            text_profile(owner.text, terms),
            [text_profile(owners[m].text, terms) for m in members],
            dense,
            policy.weights,
        )
        entries = [pool_entry(member, float(d), float(h)) for member, d, h in zip(members, dense, hybrid, strict=True)]
        pool = pool_from_ranked(entries, asked=cap, source_version=owner.version)
        versions = {member: owners[member].version for member in members}  # read with the vectors scored
        proposals[pid] = list_proposal(
            owner, states[pid], pool, versions, policy, scoring, epsilon=epsilon, own=False, emit_all=False
        )
    report.rank_s += time.perf_counter() - started
    return proposals


def _write(lists: ListStore, proposals: dict[str, PoolProposal], emit: Emitter | None, report: BulkReport) -> list[str]:
    """PREPARE, emit and COMMIT a chunk at a time; the ids whose pool moved meanwhile."""
    retry: list[str] = []
    ids = list(proposals)
    for start in range(0, len(ids), PREPARE_CHUNK):
        chunk = {pid: proposals[pid] for pid in ids[start : start + PREPARE_CHUNK]}
        prepared = lists.prepare(chunk)
        ready = list(prepared.ready.values())
        if emit is not None and ready:
            emit(ready)
        lists.commit(ready)
        report.emitted += len(ready)
        report.unchanged += prepared.unchanged
        retry.extend(prepared.retry)
    return retry
