"""Similarity quality on the real Abt-Buy offers with the real all-MiniLM-L6-v2 (issue 6).

Measured when the defaults were chosen (Abt -> Buy, recall@1, cross-shop / whole catalog): tfidf
0.806 / 0.557, dense 0.718 / 0.359, hybrid 0.911 / 0.814, default (the pipeline's settings with the
description template of the time) 0.912 / 0.723. Each bound below leaves a margin of about 2 points.
Encoding both templates takes one to three minutes on a small CPU.
"""

from __future__ import annotations

from typing import Any

import pytest

from simstream.eval_quality import run_eval
from simstream.schemas.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return run_eval(Settings(device="cpu"))


def test_hybrid_reaches_the_goal_across_shops(result: dict[str, Any]) -> None:
    assert result["hybrid"]["cross_shop"]["recall@1"] >= 0.89
    assert result["hybrid"]["cross_shop"]["recall@10"] >= 0.98
    assert result["hybrid"]["cross_shop"]["mrr"] >= 0.92
    assert result["directions"]["right_to_left"]["hybrid"]["cross_shop"]["recall@1"] >= 0.90


def test_hybrid_beats_both_parts_it_is_made_of(result: dict[str, Any]) -> None:
    for setting in ("cross_shop", "whole_catalog"):
        hybrid = result["hybrid"][setting]["recall@1"]
        assert hybrid > result["tfidf"][setting]["recall@1"] + 0.05
        assert hybrid > result["dense"][setting]["recall@1"] + 0.1


def test_hybrid_over_the_whole_catalog(result: dict[str, Any]) -> None:
    assert result["hybrid"]["whole_catalog"]["recall@1"] >= 0.79
    assert result["hybrid"]["whole_catalog"]["recall@10"] >= 0.94


def test_baselines_match_the_figures_measured_elsewhere(result: dict[str, Any]) -> None:
    # Outside the project: TF-IDF 0.789 and mean-pooled all-MiniLM-L6-v2 0.697 cross-shop recall@1.
    assert 0.78 <= result["tfidf"]["cross_shop"]["recall@1"] <= 0.83
    assert 0.69 <= result["dense"]["cross_shop"]["recall@1"] <= 0.75


def test_the_pipeline_default_scoring_reaches_the_goal(result: dict[str, Any]) -> None:
    assert result["default"]["cross_shop"]["recall@1"] >= 0.89
    assert result["data"]["queries"] == {"left_to_right": 1081, "right_to_left": 1092}
