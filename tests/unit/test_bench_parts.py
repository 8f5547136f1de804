"""The benchmarks' pure parts: workload edits, exact search, recall, percentiles, pacing, CLI wiring."""

from __future__ import annotations

import random

import numpy as np
import pytest

from simstream.bench_pipeline import paced_schedule
from simstream.bench_redis import _synthesise, exact_top_k, percentile, perturb_text, recall
from simstream.cli import build_parser


def test_perturb_drops_one_word_and_keeps_the_rest() -> None:
    text = "Sony Turntable PSLX350H Belt Drive Black"
    edited = perturb_text(text, random.Random(1))
    assert len(edited.split()) == len(text.split()) - 1
    assert set(edited.split()) < set(text.split())


def test_perturb_leaves_short_texts_whole() -> None:
    assert perturb_text("one", random.Random(0)) == "one"


def test_exact_top_k_orders_by_cosine_and_respects_the_filter() -> None:
    vectors = np.eye(4, dtype=np.float32)
    vectors[1] = np.array([0.8, 0.6, 0, 0], dtype=np.float32)
    query = np.array([1, 0, 0, 0], dtype=np.float32)
    assert exact_top_k(vectors, query, 2) == [0, 1]
    allowed = np.array([False, True, True, True])
    assert exact_top_k(vectors, query, 2, allowed)[0] == 1
    assert len(exact_top_k(vectors, query, 3, np.array([True, False, False, False]))) == 1


def test_recall_counts_the_overlap() -> None:
    assert recall([1, 2, 3, 4], [1, 2, 5, 6]) == 0.5
    assert recall([], []) == 1.0


def test_percentile_is_nearest_rank() -> None:
    samples = [float(i) for i in range(101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


def test_synthesised_vectors_are_unit_and_close_to_real_ones() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 384)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    made = _synthesise(base, 50, 20, random.Random(0))
    assert made.shape == (20, 384) and made.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(made, axis=1), 1.0, rtol=1e-5)
    assert (made @ base.T).max(axis=1).min() > 0.9  # each near its source, at the default cosine ~0.95


def test_paced_schedule_spaces_events_evenly() -> None:
    assert paced_schedule(4, 2.0) == [0.0, 0.5, 1.0, 1.5]
    with pytest.raises(ValueError):
        paced_schedule(3, 0)


def test_cli_accepts_the_new_targets_and_hnsw_flags() -> None:
    args = build_parser().parse_args(
        ["bench", "redis", "--sizes", "2000,10000", "--m", "32", "--ef-construction", "400", "--ef-runtime", "50"]
    )
    assert (args.target, args.m, args.ef_construction, args.ef_runtime) == ("redis", 32, 400, 50)
    assert build_parser().parse_args(["bench", "pipeline", "--backlog", "50"]).backlog == 50
    assert build_parser().parse_args(["bench", "stage"]).target == "stage"
