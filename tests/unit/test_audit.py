"""The audit behind ``simstream verify``, over an in-memory state: each corruption moves its counter."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest

from simstream import verify
from simstream.core.audit import (
    Thresholds,
    VerifyReport,
    audit,
    exact_top_k,
    overlap_at_k,
    threshold_failures,
)
from simstream.core.hybrid import HybridWeights
from simstream.core.list_store import StoredList, decode_list, list_payload
from simstream.core.similarity import SimilarityPolicy, exact_lists
from simstream.core.vector_store import Neighbor, Vector
from simstream.schemas.settings import Settings

MODEL = "test-model@1"
AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
POLICY = SimilarityPolicy(top_k=3)


def stored(owner: str, items: Sequence[Neighbor], list_version: int = 1) -> StoredList:
    return decode_list(list_payload(owner, items, 1, MODEL, list_version, AT))


class FakeSource:
    """The stored state as plain dicts; rev sets are derived from the lists unless changed afterwards."""

    def __init__(
        self,
        vectors: dict[str, Vector],
        lists: dict[str, StoredList],
        categories: dict[str, str] | None = None,
        texts: dict[str, str] | None = None,
    ) -> None:
        self.vectors = vectors
        self.lists = lists
        self.category_of = categories or {}
        self.text_of = texts or {}
        self.rev: dict[str, set[str]] = {}
        for owner, stored_list in lists.items():
            for item in stored_list.items:
                self.rev.setdefault(item.product_id, set()).add(owner)
        self.reads: list[int] = []

    def product_ids(self) -> list[str]:
        return list(self.vectors)

    def embeddings(self, ids: Sequence[str]) -> dict[str, Vector]:
        self.reads.append(len(ids))
        return {pid: self.vectors[pid] for pid in ids if pid in self.vectors}

    def categories(self, ids: Sequence[str]) -> dict[str, str]:
        return {pid: self.category_of.get(pid, "") for pid in ids if pid in self.vectors}

    def texts(self, ids: Sequence[str]) -> dict[str, str]:
        return {pid: self.text_of[pid] for pid in ids if pid in self.text_of}

    def list_owner_ids(self) -> list[str]:
        return list(self.lists)

    def read_pools(self, ids: Sequence[str]) -> dict[str, set[str]]:
        return {pid: {n.product_id for n in self.lists[pid].items} for pid in ids if pid in self.lists}

    def read_lists(self, ids: Sequence[str]) -> dict[str, StoredList]:
        return {pid: self.lists[pid] for pid in ids if pid in self.lists}

    def rev_member_ids(self) -> list[str]:
        return [pid for pid, owners in self.rev.items() if owners]

    def rev_many(self, ids: Sequence[str]) -> dict[str, set[str]]:
        return {pid: set(self.rev.get(pid, set())) for pid in ids}


def random_vectors(n: int, dim: int = 8, seed: int = 3) -> dict[str, Vector]:
    rng = np.random.default_rng(seed)
    return {f"p{i:02d}": rng.standard_normal(dim).astype(np.float32) for i in range(n)}


def correct_state(n: int = 12, policy: SimilarityPolicy = POLICY) -> tuple[FakeSource, dict[str, bytes | None]]:
    """Lists equal to the exact top-K, rev sets that match, and each list as the last output record."""
    vectors = random_vectors(n)
    # Scores as the worker stores them: float32 cosines, rounded in the JSON.
    lists = {pid: stored(pid, found) for pid, found in exact_lists(vectors, policy).items()}
    output: dict[str, bytes | None] = {pid: stored_list.payload for pid, stored_list in lists.items()}
    return FakeSource(vectors, lists), output


def problems(report: VerifyReport) -> dict[str, int | None]:
    return {
        "missing_lists": report.missing_lists,
        "orphan_lists": report.orphan_lists,
        "deleted_in_lists": report.deleted_in_lists,
        "score_errors": report.score_errors,
        "misordered_lists": report.misordered_lists,
        "rev_errors": report.rev_errors,
        "output_mismatches": report.output_mismatches,
    }


CLEAN: dict[str, int | None] = dict.fromkeys(
    [
        "missing_lists",
        "orphan_lists",
        "deleted_in_lists",
        "score_errors",
        "misordered_lists",
        "rev_errors",
        "output_mismatches",
    ],
    0,
)


# --- a correct state ------------------------------------------------------------------------


def test_correct_state_verifies_clean() -> None:
    source, output = correct_state()
    report = audit(source, POLICY, output=output)
    assert problems(report) == CLEAN
    assert (report.products, report.lists, report.sampled, report.output_records) == (12, 12, 12, 12)
    assert report.overlap_at_k_min == report.overlap_at_k_mean == 1.0
    assert report.lowest_overlap == () and report.examples == {}
    assert threshold_failures(report, Thresholds()) == []


def test_deleted_product_with_a_tombstone_or_no_record_is_consistent() -> None:
    source, output = correct_state()
    output["gone-1"] = None  # deleted: its tombstone is the last record
    output["gone-2"] = stored("gone-2", []).payload
    report = audit(source, POLICY, output=output)
    assert report.output_mismatches == 1
    assert report.examples["output_mismatches"] == ("gone-2: deleted, but no tombstone",)


def test_without_output_the_topic_is_not_judged() -> None:
    source, _ = correct_state()
    report = audit(source, POLICY, output=None)
    assert report.output_mismatches is None and report.output_records is None
    assert report.as_dict()["output_mismatches"] is None
    assert threshold_failures(report, Thresholds()) == []


# --- each corruption moves its own counter --------------------------------------------------


def test_list_holding_a_deleted_product() -> None:
    source, output = correct_state()
    victim = next(iter(source.rev))
    holders = len(source.rev[victim])
    del source.vectors[victim]
    report = audit(source, POLICY, output=output)
    assert report.deleted_in_lists == holders > 0
    assert report.orphan_lists == 1  # the deleted product's own list is still there
    assert report.examples["orphan_lists"] == (victim,)
    assert report.rev_errors == 0 and report.output_mismatches == 0
    assert any("deleted_in_lists" in failure for failure in threshold_failures(report, Thresholds()))


def test_missing_and_extra_rev_entries() -> None:
    source, output = correct_state()
    owner = "p00"
    member = source.lists[owner].items[0].product_id
    source.rev[member].discard(owner)
    assert audit(source, POLICY, output=output).rev_errors == 1
    outsider = next(pid for pid in source.vectors if pid not in {owner, *source.rev.get(member, set())})
    source.rev[member].update({owner, outsider})  # the first error repaired, a stale entry added
    report = audit(source, POLICY, output=output)
    assert report.rev_errors == 1
    assert report.examples["rev_errors"] == (f"rev:{member} holds {outsider}, whose list lacks it",)
    assert problems(report) == {**CLEAN, "rev_errors": 1}


def test_stale_output_record() -> None:
    source, output = correct_state()
    current = source.lists["p03"]
    source.lists["p03"] = replace(current, list_version=2, payload=stored("p03", current.items, 2).payload)
    report = audit(source, POLICY, output=output)  # the topic still ends with list_version 1
    assert problems(report) == {**CLEAN, "output_mismatches": 1}
    assert report.examples["output_mismatches"] == ("p03: list_version 1 on the topic, 2 stored",)


def test_output_record_with_the_items_in_another_order() -> None:
    source, output = correct_state()
    items = source.lists["p05"].items
    output["p05"] = stored("p05", items[::-1]).payload  # same list_version, wrong order
    report = audit(source, POLICY, output=output)
    assert problems(report) == {**CLEAN, "output_mismatches": 1}


def test_missing_output_record_and_tombstone_of_a_listed_product() -> None:
    source, output = correct_state()
    del output["p01"]
    output["p02"] = None
    report = audit(source, POLICY, output=output)
    assert report.output_mismatches == 2
    assert report.examples["output_mismatches"] == (
        "p01: no record on the output topic",
        "p02: a tombstone on the topic, but a list is stored",
    )


def test_stored_list_in_the_wrong_order() -> None:
    source, output = correct_state()
    reversed_list = stored("p04", source.lists["p04"].items[::-1])
    source.lists["p04"] = reversed_list
    output["p04"] = reversed_list.payload  # emitted as stored: only the order itself is wrong
    report = audit(source, POLICY, output=output)
    assert problems(report) == {**CLEAN, "misordered_lists": 1}
    assert report.overlap_at_k_min == 1.0  # overlap is about membership, not order


def test_scores_that_are_not_the_members_cosines() -> None:
    source, output = correct_state()
    first, second, third = source.lists["p06"].items
    assert first.score - third.score > 1e-2  # distinct enough for the swap below to show
    # Still best first by score, but the first and last ids swapped: those scores belong to the other.
    swapped = stored("p06", [Neighbor(third.product_id, first.score), second, Neighbor(first.product_id, third.score)])
    source.lists["p06"] = swapped
    output["p06"] = swapped.payload
    report = audit(source, POLICY, output=output)
    assert problems(report) == {**CLEAN, "score_errors": 2}
    assert report.overlap_at_k_min == 1.0


def test_wrong_member_lowers_overlap() -> None:
    source, output = correct_state()
    items = list(source.lists["p07"].items)
    exact_ids = {n.product_id for n in items}
    intruder = next(pid for pid in sorted(source.vectors) if pid not in exact_ids | {"p07"})
    wrong = stored("p07", [*items[:-1], Neighbor(intruder, -1.0)])
    source.lists["p07"] = wrong
    source.rev[items[-1].product_id].discard("p07")
    source.rev.setdefault(intruder, set()).add("p07")
    output["p07"] = wrong.payload
    report = audit(source, POLICY, output=output)
    assert report.overlap_at_k_min == pytest.approx(2 / 3)
    assert report.overlap_at_k_mean == pytest.approx((11 + 2 / 3) / 12)
    ((worst_id, worst_overlap),) = report.lowest_overlap
    assert worst_id == "p07" and worst_overlap == pytest.approx(2 / 3)
    assert report.rev_errors == 0 and report.output_mismatches == 0
    assert report.score_errors == 1  # the intruder's made-up score
    assert any("overlap_at_k_mean" in failure for failure in threshold_failures(report, Thresholds()))


def test_product_without_a_list_counts_as_missing_with_overlap_zero() -> None:
    source, output = correct_state()
    del source.lists["p08"]
    for owners in source.rev.values():
        owners.discard("p08")
    report = audit(source, POLICY, output=output)
    assert report.missing_lists == 1 and report.examples["missing_lists"] == ("p08",)
    assert report.overlap_at_k_min == 0.0
    # The topic still carries the list that Redis no longer has.
    assert report.examples["output_mismatches"] == ("p08: a record on the topic, but no stored list",)


# --- sampling, policy, reference ------------------------------------------------------------


def test_sample_is_seeded_and_bounded() -> None:
    source, output = correct_state(n=20)
    first = audit(source, POLICY, output=output, sample=5, seed=7)
    again = audit(source, POLICY, output=output, sample=5, seed=7)
    assert first.sampled == 5 and first.products == 20
    assert first == again
    assert audit(source, POLICY, sample=50).sampled == 20


def test_reads_are_chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("simstream.core.audit.READ_CHUNK", 5)
    source, output = correct_state()
    audit(source, POLICY, output=output)
    assert source.reads == [5, 5, 2]


def test_same_category_policy_uses_the_categories() -> None:
    policy = SimilarityPolicy(top_k=3, same_category_only=True)
    vectors = random_vectors(12)
    categories = {pid: ("A" if i % 2 else "b") for i, pid in enumerate(sorted(vectors))}
    lists = {pid: stored(pid, found) for pid, found in exact_lists(vectors, policy, categories).items()}
    source = FakeSource(vectors, lists, categories)
    assert audit(source, policy).overlap_at_k_min == 1.0
    unrestricted = {pid: stored(pid, found) for pid, found in exact_lists(vectors, POLICY).items()}
    assert audit(FakeSource(vectors, unrestricted, categories), policy).overlap_at_k_mean < 1.0


def tie_broken(neighbors: Sequence[Neighbor]) -> list[str]:
    """Ids best first, equal scores (up to BLAS rounding) by product id."""
    return [n.product_id for n in sorted(neighbors, key=lambda n: (-round(n.score, 9), n.product_id))]


@pytest.mark.parametrize(
    "policy",
    [
        SimilarityPolicy(top_k=4),
        SimilarityPolicy(top_k=4, min_score=0.2),
        SimilarityPolicy(top_k=30, same_category_only=True),
    ],
)
def test_exact_top_k_matches_the_reference(policy: SimilarityPolicy) -> None:
    # Small integer vectors with duplicates: exact ties, broken by product id in both.
    rng = np.random.default_rng(11)
    base = rng.integers(-3, 4, size=(10, 4)).astype(np.float32)
    vectors = {f"q{i:02d}": base[i % 10] for i in range(25)}
    vectors["zero"] = np.zeros(4, dtype=np.float32)
    categories = {pid: ["x", "X ", "", "y"][i % 4] for i, pid in enumerate(vectors)}
    reference = exact_lists(vectors, policy, categories)
    subset = ["q03", "zero", "q17"]
    for ids in (list(vectors), subset):
        found = exact_top_k(vectors, policy, ids, categories)
        assert list(found) == ids
        for pid in ids:
            assert [n.score for n in found[pid]] == pytest.approx([n.score for n in reference[pid]]), pid
            assert tie_broken(found[pid]) == tie_broken(reference[pid]) == [n.product_id for n in found[pid]]


def test_overlap_at_k() -> None:
    a, b, c = Neighbor("a", 0.9), Neighbor("b", 0.8), Neighbor("c", 0.7)
    assert overlap_at_k([a, b], [b, a]) == 1.0
    assert overlap_at_k([a, c], [a, b]) == 0.5
    assert overlap_at_k([], [a]) == 0.0
    assert overlap_at_k([], []) == 1.0
    assert overlap_at_k([a], []) == 0.0


# --- thresholds and the command -------------------------------------------------------------


def test_each_threshold_fails_only_past_its_limit() -> None:
    source, output = correct_state()
    clean = audit(source, POLICY, output=output)
    bad = replace(
        clean,
        overlap_at_k_mean=0.9,
        overlap_at_k_min=0.5,
        missing_lists=1,
        orphan_lists=2,
        deleted_in_lists=3,
        score_errors=4,
        misordered_lists=5,
        rev_errors=6,
        output_mismatches=7,
    )
    assert len(threshold_failures(bad, Thresholds(min_overlap_min=0.6))) == 9
    loose = Thresholds(0.9, 0.5, 1, 2, 3, 4, 5, 6, 7)
    assert threshold_failures(bad, loose) == []


def test_a_pending_first_load_fails_whatever_the_limits() -> None:
    source, output = correct_state()
    pending = replace(audit(source, POLICY, output=output), first_load_pending=True)
    assert threshold_failures(pending, Thresholds(0.0, 0.0, 9, 9, 9, 9, 9, 9, 9)) == [
        "a first load is pending (or a term snapshot switch): its lists are built once the input backlog is drained"
    ]
    assert pending.as_dict()["first_load_pending"] is True
    assert "first load         pending" in verify.format_report(pending)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    verify.add_verify_arguments(parser)
    return parser.parse_args(argv)


def test_cmd_verify_json_and_exit_codes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    source, output = correct_state()
    del source.vectors["p09"]  # p09's list is an orphan, and lists holding p09 now hold a deleted product
    seen: dict[str, object] = {}

    def fake_run(settings: Settings, **kwargs: object) -> VerifyReport:
        seen.update(kwargs)
        return audit(source, POLICY, output=None if kwargs["check_output"] is False else output)

    monkeypatch.setattr(verify, "run_verify", fake_run)
    assert verify.cmd_verify(parse(["--json", "--sample", "4", "--no-output"]), Settings()) == 1
    printed = orjson.loads(capsys.readouterr().out)
    assert seen["sample"] == 4 and seen["check_output"] is False
    assert {"products", "overlap_at_k_min", "overlap_at_k_mean", "deleted_in_lists", "rev_errors"} <= set(printed)
    assert printed["output_mismatches"] is None and printed["ok"] is False
    loose = ["--max-deleted", "100", "--max-orphan-lists", "1", "--min-overlap-mean", "0"]
    assert verify.cmd_verify(parse(loose), Settings()) == 0
    text = capsys.readouterr().out
    assert "deleted in lists" in text and text.rstrip().endswith("OK")


def test_negative_sample_is_rejected() -> None:
    with pytest.raises(SystemExit):
        parse(["--sample", "-1"])


# --- hybrid scoring ----------------------------------------------------------------------------

HYBRID = SimilarityPolicy(top_k=3, weights=HybridWeights(code=1.0, lexical=0.25), candidates=6)


def hybrid_texts(ids: Sequence[str]) -> dict[str, str]:
    # Pairs of products share a model code, whatever their vectors say.
    return {pid: f"offer {pid} model XQ{int(pid[1:]) // 2:03d}Z" for pid in ids}


def test_a_hybrid_state_verifies_clean_and_a_dense_one_does_not() -> None:
    vectors = random_vectors(12)
    texts = hybrid_texts(list(vectors))
    hybrid_lists = {pid: stored(pid, found) for pid, found in exact_lists(vectors, HYBRID, texts=texts).items()}
    source = FakeSource(vectors, hybrid_lists, texts=texts)
    report = audit(source, HYBRID)
    assert problems(report) == {**CLEAN, "output_mismatches": None}
    assert report.overlap_at_k_mean == 1.0
    # The pure-cosine lists are not what the hybrid policy defines: overlap and scores both show it.
    dense_lists = {pid: stored(pid, found) for pid, found in exact_lists(vectors, POLICY).items()}
    wrong = audit(FakeSource(vectors, dense_lists, texts=texts), HYBRID)
    assert wrong.overlap_at_k_mean < 1.0 and wrong.score_errors > 0
