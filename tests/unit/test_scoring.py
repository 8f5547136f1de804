"""core/scoring's block top-k against brute force, and core/bulk_lists' category codes."""

from __future__ import annotations

import numpy as np
import pytest

from simstream.core.bulk_lists import category_groups
from simstream.core.scoring import block_top_k, unit_rows


def brute_top_k(vectors: np.ndarray, k: int, groups: np.ndarray | None = None) -> list[list[int]]:
    unit = unit_rows(vectors).astype(np.float64)
    scores = unit @ unit.T
    found = []
    for row in range(len(unit)):
        candidates = [
            (-round(float(scores[row, col]), 5), col)
            for col in range(len(unit))
            if col != row and (groups is None or groups[row] < 0 or groups[row] == groups[col])
        ]
        found.append([col for _, col in sorted(candidates)[:k]])
    return found


@pytest.mark.parametrize("block_rows", [1, 7, 512])
def test_block_top_k_is_the_exact_top_k_in_any_block_size(block_rows: int) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(41, 8)).astype(np.float32)
    top = block_top_k(vectors, 6, block_rows=block_rows)
    assert top.columns.tolist() == brute_top_k(vectors, 6)
    assert np.all(np.diff(top.scores, axis=1) <= 0)  # best first


def test_groups_keep_rows_to_their_own_group_and_negative_rows_pair_with_any() -> None:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    groups = np.array([i % 3 - 1 for i in range(30)], dtype=np.int64)  # -1 (no category), 0, 1
    top = block_top_k(vectors, 12, groups=groups, block_rows=8)
    want = brute_top_k(vectors, 12, groups)
    for row in range(30):
        got = [int(c) for c in top.columns[row] if c >= 0]
        assert got == want[row]
        if groups[row] >= 0:  # 10 rows per group: 9 candidates, the rest of the row is empty
            assert len(got) == 9 and np.all(np.isneginf(top.scores[row][9:]))


def test_category_groups_fold_case_and_spaces_and_leave_empty_unrestricted() -> None:
    codes = category_groups(["Audio", " audio ", "Video", "", "  "]).tolist()
    assert codes[0] == codes[1] != codes[2] and codes[3] == codes[4] == -1 and min(codes[:3]) >= 0
