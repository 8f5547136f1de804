"""The evaluation harness on small hand-made tables and a fake encoder (no model, no network)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pytest

from simstream import eval_quality
from simstream.core.errors import InputFileError
from simstream.core.hybrid import HybridWeights
from simstream.eval_quality import (
    METHODS,
    MIN_SCORES,
    SETTINGS,
    Scoring,
    add_eval_arguments,
    cmd_eval,
    evaluate,
    format_eval_table,
    half_of,
    load_task,
    match_ranks,
    run_eval,
    summarize_ranks,
)
from simstream.schemas.settings import Settings

LEFT_CSV = (
    '"id","name","description","price"\n'
    '1,"Sony Turntable - PSLX350H","Belt drive turntable",$99.00\n'
    '2,"Bose Speaker System - AM53BK","Two cube speakers",\n'
    '3,"Café Espresso Machine - EC155","Pump espresso",$80\n'
    '4,"","no title: left out",\n'
)
RIGHT_CSV = (
    '"id","title","description","manufacturer","price"\n'
    '10,"Sony PS-LX350H Turntable","","Sony",\n'
    '11,"Bose Acoustimass AM53BK","","Bose",\n'
    '12,"DeLonghi EC-155 Espresso","","DeLonghi",\n'
    '13,"Sony Turntable PSLX250H","","Sony",\n'
)
MATCHES_CSV = '"idLeft","idRight"\n1,10\n2,11\n3,12\n99,10\n'


def uninformative_encode(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Every text gets the same vector: all dense scores tie, so only lexical evidence can decide."""
    return np.full((len(texts), 4), 0.5, dtype=np.float32)


@pytest.fixture
def tables(tmp_path: Path) -> tuple[Path, Path, Path]:
    left, right, matches = tmp_path / "left.csv", tmp_path / "right.csv", tmp_path / "map.csv"
    left.write_bytes(LEFT_CSV.encode("cp1252"))  # like Abt.csv: not UTF-8
    right.write_text(RIGHT_CSV, encoding="utf-8")
    matches.write_text(MATCHES_CSV, encoding="utf-8")
    return left, right, matches


def test_match_rank_is_the_best_true_match_and_ties_count_against_it() -> None:
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.5, 0.5, 0.2, 0.2], [0.9, 0.8, 0.7, 0.1]], dtype=np.float32)
    relevant = np.array([[0, 1, 0, 1], [1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.bool_)
    candidates = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1]], dtype=np.bool_)
    assert match_ranks(scores, relevant, candidates).tolist() == [2, 2, 1]


def test_match_ranks_reject_queries_without_a_relevant_candidate() -> None:
    scores = np.zeros((1, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="relevant"):
        match_ranks(scores, np.zeros((1, 3), dtype=np.bool_), np.ones((1, 3), dtype=np.bool_))
    with pytest.raises(ValueError, match="relevant"):
        match_ranks(scores, np.array([[True, False, False]]), np.array([[False, True, True]]))


def test_summarize_ranks() -> None:
    summary = summarize_ranks(np.array([1, 2, 20], dtype=np.int64))
    assert summary == {"recall@1": 0.3333, "recall@10": 0.6667, "mrr": round((1 + 0.5 + 0.05) / 3, 4)}
    with pytest.raises(ValueError):
        summarize_ranks(np.array([], dtype=np.int64))


def test_load_task_reads_any_encoding_and_skips_what_it_cannot_use(tables: tuple[Path, Path, Path]) -> None:
    task = load_task(*tables)
    assert (task.left_name, task.right_name) == ("left", "right")
    assert (task.left_count, task.right_count) == (3, 4)
    assert task.products[2].title == "Café Espresso Machine - EC155"
    assert task.products[3].brand == "Sony"  # manufacturer column
    assert task.matches == ((0, 3), (1, 4), (2, 5))
    assert (task.skipped_offers, task.skipped_matches) == (1, 1)


def test_load_task_defaults_to_the_packaged_abt_buy() -> None:
    task = load_task()
    assert (task.left_name, task.right_name) == ("Abt", "Buy")
    assert (task.left_count, task.right_count, len(task.matches)) == (1081, 1092, 1097)


def test_load_task_errors_are_simstream_errors(tmp_path: Path, tables: tuple[Path, Path, Path]) -> None:
    with pytest.raises(InputFileError):
        load_task(tmp_path / "missing.csv", tables[1], tables[2])
    unrelated = tmp_path / "unrelated.csv"
    unrelated.write_text("a,b\n7,8\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="no id pair"):
        load_task(tables[0], tables[1], unrelated)


def _evaluate(task_files: tuple[Path, Path, Path], weights: HybridWeights) -> dict[str, Any]:
    scoring = Scoring("{title}. {brand}", weights, rerank_candidates=50)
    return evaluate(load_task(*task_files), uninformative_encode, eval_scoring=scoring, default_scoring=scoring)


def test_every_method_and_setting_has_the_three_metrics(tables: tuple[Path, Path, Path]) -> None:
    result = _evaluate(tables, HybridWeights())
    for method in METHODS:
        for setting in SETTINGS:
            metrics = result[method][setting]
            assert set(metrics) == {"recall@1", "recall@10", "mrr"}
            assert all(0.0 <= value <= 1.0 for value in metrics.values())
            assert result["directions"]["left_to_right"][method][setting] == metrics
            assert set(result["directions"]["right_to_left"][method][setting]) == set(metrics)
    assert result["data"]["queries"] == {"left_to_right": 3, "right_to_left": 3}


def test_codes_decide_where_dense_scores_tie(tables: tuple[Path, Path, Path]) -> None:
    result = _evaluate(tables, HybridWeights(code=1.0, lexical=0.25))
    # All dense scores tie, and ties count against the match: the true match is ranked last.
    assert result["dense"]["cross_shop"] == {"recall@1": 0.0, "recall@10": 1.0, "mrr": 0.25}
    assert result["hybrid"]["cross_shop"]["recall@1"] == 1.0
    assert result["hybrid"]["whole_catalog"]["recall@1"] == 1.0
    assert result["tfidf"]["cross_shop"]["recall@1"] == 1.0


def test_dense_only_weights_make_hybrid_equal_dense(tables: tuple[Path, Path, Path]) -> None:
    result = _evaluate(tables, HybridWeights(code=0.0, lexical=0.0))
    assert result["hybrid"] == result["dense"]


def test_run_eval_uses_the_settings_for_default(tables: tuple[Path, Path, Path]) -> None:
    settings = Settings(text_template="{title}", hybrid_code_weight=0.0, hybrid_lexical_weight=0.0)
    left, right, matches = tables
    result = run_eval(settings, left=left, right=right, matches=matches, encode=uninformative_encode)
    assert result["scorings"]["default"]["template"] == "{title}"
    assert result["default"] == result["dense"]  # no lexical evidence: the ties stay
    assert result["hybrid"]["cross_shop"]["recall@1"] == 1.0  # default weights on the eval template
    table = format_eval_table(result)
    for label in ("left -> right", "right -> left", *METHODS):
        assert label in table


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_eval_arguments(parser)
    return parser.parse_args(argv)


def test_cmd_eval_prints_one_json_object(
    tables: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_run_eval = eval_quality.run_eval

    def fake_model_run_eval(settings: Settings, **kwargs: Any) -> dict[str, Any]:
        return real_run_eval(settings, encode=uninformative_encode, **kwargs)

    monkeypatch.setattr(eval_quality, "run_eval", fake_model_run_eval)
    left, right, matches = tables
    args = _args("--left", str(left), "--right", str(right), "--matches", str(matches), "--json")
    assert cmd_eval(args, Settings()) == 0
    printed = orjson.loads(capsys.readouterr().out)
    assert set(METHODS) <= set(printed)
    assert set(printed["hybrid"]) == set(SETTINGS)


def test_cmd_eval_reports_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_eval(_args("--left", str(tmp_path / "nope.csv")), Settings()) == 2
    assert "simstream eval:" in capsys.readouterr().err


def test_the_two_halves_split_the_matches_by_left_offer(tables: tuple[Path, Path, Path]) -> None:
    task = load_task(*tables)
    one, two = half_of(task, 1), half_of(task, 2)
    assert set(one.matches) | set(two.matches) == set(task.matches)
    assert not {left for left, _ in one.matches} & {left for left, _ in two.matches}
    assert one.products == task.products  # every offer stays a candidate
    assert half_of(task, 1, seed=12).matches == one.matches
    with pytest.raises(ValueError):
        half_of(task, 3)


def test_min_score_table_counts_what_a_threshold_keeps(tables: tuple[Path, Path, Path]) -> None:
    result = _evaluate(tables, HybridWeights())
    rows = result["min_score"]["left_to_right"]
    assert [row["min_score"] for row in rows] == list(MIN_SCORES)
    kept = [row["kept"] for row in rows]
    assert kept == sorted(kept, reverse=True)  # a higher threshold keeps fewer
    for row in rows:
        assert row["recall"] <= row["kept"] and 0.0 <= row["precision"] <= 1.0
    assert "SIMSTREAM_MIN_SCORE" in format_eval_table(result)
