"""`bench scoring` at a tiny size: every figure present and positive, the table and the CLI's JSON."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from simstream.bench_scoring import format_scoring_table, run_scoring_bench, unit_vectors
from simstream.cli import main


def test_unit_vectors_are_seeded_and_unit_length() -> None:
    vectors = unit_vectors(10, seed=3)
    assert vectors.shape == (10, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(vectors, unit_vectors(10, seed=3))


def test_a_tiny_run_times_dense_scores_and_block_top_k_on_the_cpu() -> None:
    result = run_scoring_bench(size=120, affected=32, batches=(4, 8), devices=["cpu"])
    cpu = result["devices"]["cpu"]
    assert [row["batch"] for row in cpu["dense_scores"]] == [4, 8]
    assert all(row["affected"] == 32 and row["seconds"] > 0 and row["rows_per_s"] > 0 for row in cpu["dense_scores"])
    (top,) = cpu["block_top_k"]  # below the real catalog's size, only ``size`` runs
    assert top["n"] == 120 and top["k"] == 66 and top["rows_per_s"] > 0
    assert result["config"]["sizes"] == [120] and result["config"]["gpu"] is None
    table = format_scoring_table(result)
    assert "dense_scores 8 x 32" in table and "block_top_k k=66 N=120" in table


def test_the_cli_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "scoring", "--size", "80", "--affected", "16", "--json"]) == 0
    result = orjson.loads(capsys.readouterr().out)
    assert "cpu" in result["devices"]
    assert [row["batch"] for row in result["devices"]["cpu"]["dense_scores"]] == [64, 512]


def test_sizes_are_checked() -> None:
    with pytest.raises(ValueError):
        run_scoring_bench(size=1, devices=["cpu"])
