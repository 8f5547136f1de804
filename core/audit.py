"""Audit of the live state against exact brute force: what ``simstream verify`` reports (design.md §4).

Pure logic over two small read interfaces: the stored state (:class:`AuditSource`, Redis in production)
and the output topic's last record per key (a mapping, ``None`` for a tombstone). Nothing here talks to
Kafka or Redis itself, so every rule is tested with in-memory fakes.

What it checks, for a drained stream:
- overlap@K of each (sampled) product's stored list with the exact list over all stored vectors (the
  exact dense top-pool_size ranked by the policy's scoring, core/similarity);
- stored item scores against the exact score of the two stored products, and lists sorted best first;
- products without a list, lists of products that no longer exist, list members that aren't products;
- ``rev:`` sets against the pools the lists were ranked from, both ways;
- the output topic's last record per key against the stored list (or a tombstone for a deleted product).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from simstream.core.hybrid import pair_score, rank_pool
from simstream.core.list_store import StoredList
from simstream.core.similarity import SimilarityPolicy
from simstream.core.vector_store import Neighbor, Vector
from simstream.schemas.codec import decode_similar_items

# Ids per read: bounds one pipeline / MGET when the whole catalog is audited.
READ_CHUNK = 1000
# Query rows per brute-force block: a (block x catalog) float64 score matrix at a time.
SCORE_BLOCK_ROWS = 256
# Stored scores are float32 cosines rounded to 6 decimals; the reference is float64.
SCORE_TOLERANCE = 1e-3
ORDER_TOLERANCE = 1e-6
TIE_DECIMALS = 12
# Problems named per kind in the report: enough to start debugging, never the whole catalog.
MAX_EXAMPLES = 5

T = TypeVar("T")
Note = Callable[[str, str], None]  # (kind, text): records one example of a problem
OutputRecords = Mapping[str, bytes | None]  # product_id -> last value on the output topic (None: tombstone)


class AuditSource(Protocol):
    """The stored state the audit reads (``simstream.verify.RedisAuditSource`` over Redis)."""

    def product_ids(self) -> list[str]: ...
    def embeddings(self, ids: Sequence[str]) -> dict[str, Vector]: ...
    def categories(self, ids: Sequence[str]) -> dict[str, str]: ...
    def texts(self, ids: Sequence[str]) -> dict[str, str]: ...  # the stored (embedded) texts
    def list_owner_ids(self) -> list[str]: ...  # products that have a stored list (similar:{id})
    def read_lists(self, ids: Sequence[str]) -> dict[str, StoredList]: ...
    def read_pools(self, ids: Sequence[str]) -> dict[str, set[str]]: ...  # what each list was ranked from
    def rev_member_ids(self) -> list[str]: ...  # products that have a non-empty rev:{id}
    def rev_many(self, ids: Sequence[str]) -> dict[str, set[str]]: ...


@dataclass(frozen=True, slots=True)
class VerifyReport:
    products: int  # stored products (with an embedding)
    lists: int  # stored similar lists
    sampled: int  # products whose overlap and scores were measured
    top_k: int
    overlap_at_k_min: float  # 1.0 when nothing was sampled
    overlap_at_k_mean: float
    missing_lists: int  # products without a stored list
    orphan_lists: int  # stored lists of products that no longer exist
    deleted_in_lists: int  # list entries naming a product that isn't stored
    score_errors: int  # (sampled) list entries whose score differs from the exact score
    misordered_lists: int  # lists whose scores are not best first
    rev_errors: int  # (owner, member) pairs where a list and rev:{member} disagree
    output_records: int | None  # keys on the output topic; None when the topic was not read
    output_mismatches: int | None
    lowest_overlap: tuple[tuple[str, float], ...] = ()
    examples: dict[str, tuple[str, ...]] = field(default_factory=dict)
    first_load_pending: bool = False  # a first load's lists are not built yet (core/first_load)

    def as_dict(self) -> dict[str, Any]:
        return {
            "products": self.products,
            "lists": self.lists,
            "sampled": self.sampled,
            "top_k": self.top_k,
            "overlap_at_k_min": self.overlap_at_k_min,
            "overlap_at_k_mean": self.overlap_at_k_mean,
            "missing_lists": self.missing_lists,
            "orphan_lists": self.orphan_lists,
            "deleted_in_lists": self.deleted_in_lists,
            "score_errors": self.score_errors,
            "misordered_lists": self.misordered_lists,
            "rev_errors": self.rev_errors,
            "output_records": self.output_records,
            "output_mismatches": self.output_mismatches,
            "lowest_overlap": [{"product_id": pid, "overlap": value} for pid, value in self.lowest_overlap],
            "examples": {kind: list(items) for kind, items in self.examples.items()},
            "first_load_pending": self.first_load_pending,
        }


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Limits past which ``simstream verify`` exits non-zero."""

    min_overlap_mean: float = 0.99
    min_overlap_min: float = 0.0
    max_missing_lists: int = 0
    max_orphan_lists: int = 0
    max_deleted: int = 0
    max_score_errors: int = 0
    max_misordered: int = 0
    max_rev_errors: int = 0
    max_output_mismatches: int = 0


def threshold_failures(report: VerifyReport, limits: Thresholds) -> list[str]:
    """One sentence per limit the report is past; empty when the state passes."""
    failures: list[str] = []
    if report.first_load_pending:
        failures.append(
            "a first load is pending (or a term snapshot switch): its lists are built once the input backlog is drained"
        )
    if report.overlap_at_k_mean < limits.min_overlap_mean:
        failures.append(f"overlap_at_k_mean {report.overlap_at_k_mean:.4f} < {limits.min_overlap_mean}")
    if report.overlap_at_k_min < limits.min_overlap_min:
        failures.append(f"overlap_at_k_min {report.overlap_at_k_min:.4f} < {limits.min_overlap_min}")
    counted = [
        ("missing_lists", report.missing_lists, limits.max_missing_lists),
        ("orphan_lists", report.orphan_lists, limits.max_orphan_lists),
        ("deleted_in_lists", report.deleted_in_lists, limits.max_deleted),
        ("score_errors", report.score_errors, limits.max_score_errors),
        ("misordered_lists", report.misordered_lists, limits.max_misordered),
        ("rev_errors", report.rev_errors, limits.max_rev_errors),
        ("output_mismatches", report.output_mismatches, limits.max_output_mismatches),
    ]
    failures += [f"{name} {value} > {limit}" for name, value, limit in counted if value is not None and value > limit]
    return failures


def audit(
    source: AuditSource,
    policy: SimilarityPolicy,
    *,
    output: OutputRecords | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> VerifyReport:
    """Audit the stored state (and the output topic's last records when ``output`` is given).

    ``sample`` limits the brute-force checks (overlap, scores) to that many products drawn with ``seed``;
    every other check covers the whole state.
    """
    vectors = read_in_chunks(source.embeddings, source.product_ids())
    products = set(vectors)
    lists = read_in_chunks(source.read_lists, source.list_owner_ids())
    examples: dict[str, list[str]] = {}

    def note(kind: str, text: str) -> None:
        examples.setdefault(kind, []).append(text)

    missing = sorted(products - lists.keys())
    orphans = sorted(lists.keys() - products)
    for pid in missing:
        note("missing_lists", pid)
    for pid in orphans:
        note("orphan_lists", pid)
    deleted_in_lists, misordered = _list_errors(lists, products, note)

    sampled = _sample(sorted(products), sample, seed)
    categories = read_in_chunks(source.categories, sorted(products)) if policy.same_category_only else None
    texts = None if policy.weights.is_dense_only else read_in_chunks(source.texts, sorted(products))
    exact = exact_top_k(vectors, policy, sampled, categories, texts)
    overlaps = {pid: overlap_at_k(lists[pid].items if pid in lists else (), exact[pid]) for pid in sampled}
    sampled_lists = {pid: lists[pid] for pid in sampled if pid in lists}
    score_errors = _score_errors(vectors, sampled_lists, policy, texts or {}, note)

    rev_errors = _rev_errors(source, lists, note)
    output_mismatches = None if output is None else _output_mismatches(output, lists, products, note)

    worst = sorted(overlaps.items(), key=lambda pair: (pair[1], pair[0]))
    return VerifyReport(
        products=len(products),
        lists=len(lists),
        sampled=len(sampled),
        top_k=policy.top_k,
        overlap_at_k_min=min(overlaps.values(), default=1.0),
        overlap_at_k_mean=float(np.mean(list(overlaps.values()))) if overlaps else 1.0,
        missing_lists=len(missing),
        orphan_lists=len(orphans),
        deleted_in_lists=deleted_in_lists,
        score_errors=score_errors,
        misordered_lists=misordered,
        rev_errors=rev_errors,
        output_records=None if output is None else len(output),
        output_mismatches=output_mismatches,
        lowest_overlap=tuple((pid, value) for pid, value in worst[:MAX_EXAMPLES] if value < 1.0),
        examples={kind: tuple(found[:MAX_EXAMPLES]) for kind, found in examples.items()},
    )


def _list_errors(lists: Mapping[str, StoredList], products: Set[str], note: Note) -> tuple[int, int]:
    """(entries naming a product that isn't stored, lists whose scores are not best first)."""
    deleted = misordered = 0
    for owner in sorted(lists):
        items = lists[owner].items
        for item in items:
            if item.product_id not in products:
                deleted += 1
                note("deleted_in_lists", f"{owner} lists {item.product_id}")
        if any(later.score > earlier.score + ORDER_TOLERANCE for earlier, later in itertools.pairwise(items)):
            misordered += 1
            note("misordered_lists", owner)
    return deleted, misordered


def _score_errors(
    vectors: Mapping[str, Vector],
    lists: Mapping[str, StoredList],
    policy: SimilarityPolicy,
    texts: Mapping[str, str],
    note: Note,
) -> int:
    """List entries whose stored score is not the score of the two stored products (a stale list)."""
    errors = 0
    for owner in sorted(lists):
        for item in lists[owner].items:
            if item.product_id not in vectors:
                continue  # counted as deleted_in_lists
            dense = float(_unit(vectors[owner]) @ _unit(vectors[item.product_id]))
            true_score = pair_score(
                texts.get(owner, ""), texts.get(item.product_id, ""), dense, policy.weights, policy.terms
            )
            if abs(true_score - item.score) > SCORE_TOLERANCE:
                errors += 1
                note("score_errors", f"{owner} -> {item.product_id}: {item.score:.6f} != {true_score:.6f}")
    return errors


def _output_mismatches(output: OutputRecords, lists: Mapping[str, StoredList], products: Set[str], note: Note) -> int:
    mismatches = 0
    for key in sorted(products | lists.keys() | output.keys()):
        reason = output_mismatch(key, lists.get(key), key in products, output)
        if reason is not None:
            mismatches += 1
            note("output_mismatches", f"{key}: {reason}")
    return mismatches


def overlap_at_k(stored: Sequence[Neighbor], exact: Sequence[Neighbor]) -> float:
    """|stored ∩ exact| / max(1, |exact|); 1.0 when both are empty (nothing qualifies, nothing listed)."""
    if not stored and not exact:
        return 1.0
    common = {n.product_id for n in stored} & {n.product_id for n in exact}
    return len(common) / max(1, len(exact))


def output_mismatch(key: str, stored: StoredList | None, is_product: bool, output: OutputRecords) -> str | None:
    """Why the output topic's last record for ``key`` disagrees with the stored state, or None."""
    present = key in output
    value = output.get(key)
    if stored is None:
        if value is None:  # no record, or a tombstone: right for a deleted (or never listed) product
            return None
        return "a record on the topic, but no stored list" if is_product else "deleted, but no tombstone"
    if not present:
        return "no record on the output topic"
    if value is None:
        return "a tombstone on the topic, but a list is stored"
    try:
        record = decode_similar_items(value)
    except ValueError as exc:
        return f"undecodable record ({exc})"
    if record.product_id != key:
        return f"record for {record.product_id!r} under key {key!r}"
    if record.list_version != stored.list_version:
        return f"list_version {record.list_version} on the topic, {stored.list_version} stored"
    emitted = [(item.product_id, item.score) for item in record.items]
    if emitted != [(n.product_id, n.score) for n in stored.items]:
        return f"items differ at list_version {stored.list_version}"
    return None


def exact_top_k(
    vectors: Mapping[str, Vector],
    policy: SimilarityPolicy,
    query_ids: Sequence[str],
    categories: Mapping[str, str] | None = None,
    texts: Mapping[str, str] | None = None,
) -> dict[str, list[Neighbor]]:
    """``similarity.exact_lists`` for the ``query_ids`` only, vectorised: same scores, same tie-break
    (product id), same category rule; the rows are scored in blocks so memory stays bounded."""
    ids = list(vectors)
    if not ids or not query_ids:
        return {}
    matrix = np.stack([np.asarray(vectors[pid], dtype=np.float64) for pid in ids])
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.where(norms == 0.0, 1.0, norms)
    position = {pid: i for i, pid in enumerate(ids)}
    id_rank = np.empty(len(ids), dtype=np.int64)
    id_rank[sorted(range(len(ids)), key=ids.__getitem__)] = np.arange(len(ids))
    codes = _category_codes(ids, categories) if policy.same_category_only else None

    found: dict[str, list[Neighbor]] = {}
    for start in range(0, len(query_ids), SCORE_BLOCK_ROWS):
        chunk = list(query_ids[start : start + SCORE_BLOCK_ROWS])
        rows = np.asarray([position[pid] for pid in chunk])
        scores = unit[rows] @ unit.T
        scores[np.arange(len(rows)), rows] = -np.inf
        if codes is not None:
            own = codes[rows][:, None]
            scores[(own >= 0) & (codes[None, :] != own)] = -np.inf
        # Rounded for the sort only: equal vectors may score a few ulps apart (BLAS blocking), and
        # those ties must still be broken by product id.
        ranked = -np.round(scores, TIE_DECIMALS)
        order = np.lexsort((np.broadcast_to(id_rank, scores.shape), ranked), axis=-1)[:, : policy.pool_size]
        for i, pid in enumerate(chunk):
            pool = [Neighbor(ids[col], float(scores[i, col])) for col in order[i] if np.isfinite(scores[i, col])]
            best = rank_pool((texts or {}).get(pid, ""), pool, texts or {}, policy.weights, policy.top_k, policy.terms)
            found[pid] = policy.keep(best)
    return found


def _category_codes(ids: Sequence[str], categories: Mapping[str, str] | None) -> npt.NDArray[np.int64]:
    """One integer per folded category (as the TAG index compares them); -1 for none (unrestricted)."""
    folded = [(categories or {}).get(pid, "").strip().lower() for pid in ids]
    numbering: dict[str, int] = {}
    return np.asarray([numbering.setdefault(c, len(numbering)) if c else -1 for c in folded], dtype=np.int64)


def _rev_errors(source: AuditSource, lists: Mapping[str, StoredList], note: Note) -> int:
    """Pairs (owner, member) in a list's pool but not in rev:{member}, or in rev:{member} but not in the
    pool; and list items missing from their own pool."""
    pools = read_in_chunks(source.read_pools, sorted(lists))
    pooled = {(owner, member) for owner, pool in pools.items() for member in pool}
    rev_sets = read_in_chunks(source.rev_many, list(dict.fromkeys(source.rev_member_ids())))
    reverse = {(owner, member) for member, owners in rev_sets.items() for owner in owners}
    outside = {(owner, n.product_id) for owner, stored in lists.items() for n in stored.items} - pooled
    for owner, member in sorted(pooled - reverse):
        note("rev_errors", f"{owner} lists {member}, rev:{member} lacks it")
    for owner, member in sorted(reverse - pooled):
        note("rev_errors", f"rev:{member} holds {owner}, whose list lacks it")
    for owner, member in sorted(outside):
        note("rev_errors", f"{owner} lists {member}, outside the pool it was ranked from")
    return len(pooled ^ reverse) + len(outside)


def _sample(ids: Sequence[str], sample: int | None, seed: int) -> list[str]:
    if sample is None or sample >= len(ids):
        return list(ids)
    if sample < 0:
        raise ValueError(f"sample must be non-negative, got {sample}")
    return sorted(random.Random(seed).sample(list(ids), sample))


def _unit(vector: Vector) -> npt.NDArray[np.float64]:
    array = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(array))
    return array / norm if norm else array


def read_in_chunks(read: Callable[[Sequence[str]], Mapping[str, T]], ids: Iterable[str]) -> dict[str, T]:
    """``read`` over ``ids`` in chunks of READ_CHUNK, merged."""
    unique = list(dict.fromkeys(ids))
    merged: dict[str, T] = {}
    for start in range(0, len(unique), READ_CHUNK):
        merged.update(read(unique[start : start + READ_CHUNK]))
    return merged
