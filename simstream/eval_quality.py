"""``simstream eval``: how well each scoring finds the same product in the other shop (Abt-Buy by default).

Data: two offer tables (columns id, name or title, description, manufacturer, price; any text encoding)
and a two-column id mapping (left id, right id; a header row is skipped). Offers whose title is empty
are left out, like the stream would dead-letter them; mapping rows naming a missing offer are ignored.

Metrics, per direction (left to right: each left offer with at least one true match is a query):
- the rank of a query is the rank of its best-ranked true match (Abt has several matches for some
  items: a hit counts when ANY true match is at or above the rank); ties count against the match
  (rank = 1 + the number of non-matching candidates scoring at least as high);
- ``recall@k``: share of queries with rank <= k; ``mrr``: mean of 1 / rank over all queries;
- ``cross_shop``: the candidates are the other table's offers; ``whole_catalog``: every other offer of
  both tables (the query itself excluded), which is what the pipeline's similar-item lists rank.

Methods: ``tfidf`` (TF-IDF cosine of the texts' words and model codes, the baseline), ``dense`` (the
encoder's cosine), ``hybrid`` (dense top-N re-ranked with model codes and TF-IDF of words, codes and
character trigrams, :mod:`simstream.core.hybrid`, default weights), all three on the evaluation
template; ``default`` is what the running pipeline does with the given settings (``text_template``,
``hybrid_code_weight``, ``hybrid_lexical_weight``, ``rerank_candidates``). Both hybrids weigh tokens
by IDF over the evaluated catalog: what the pipeline's term snapshot holds once it loaded that catalog
(core/terms).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import ValidationError

from simstream.core.errors import InputFileError, SimstreamError
from simstream.core.hybrid import DEFAULT_RERANK_CANDIDATES, HybridWeights, LexicalProfile, rerank_profiles
from simstream.core.lexical import DocumentFrequencies, TfidfMatrix, lexical_tokens, word_bag
from simstream.core.text import build_text, read_text_file
from simstream.producers.catalog import CatalogError, read_catalog
from simstream.schemas.events import Product
from simstream.schemas.settings import Settings

# Chosen on Abt-Buy (README, "What a similar-items list is"): the description hurts the dense encoder (long
# spec lists drown the product's identity) and adds little lexical evidence the title lacks.
EVAL_TEMPLATE: Final = "{title}. {brand}. {category}. {attributes}"
METHODS: Final = ("tfidf", "dense", "hybrid", "default")
SETTINGS: Final = ("cross_shop", "whole_catalog")
RECALL_CUTOFFS: Final = (1, 10)
DEFAULT_FILES: Final = ("Abt.csv", "Buy.csv", "abt_buy_perfectMapping.csv")
# What SIMSTREAM_MIN_SCORE would keep of the default method's best cross-shop candidates.
MIN_SCORES: Final = (0.3, 0.4, 0.5, 0.6, 0.7)
# Re-ranked candidates are placed above every other candidate: hybrid scores never exceed 1.
_RERANKED_OFFSET: Final = 10.0

FloatMatrix = npt.NDArray[np.float32]
Encode = Callable[[Sequence[str]], FloatMatrix]


@dataclass(frozen=True, slots=True)
class MatchingTask:
    """Two offer tables and the true matches between them, as positions in ``products``."""

    left_name: str
    right_name: str
    products: tuple[Product, ...]  # the left table's offers, then the right table's
    left_count: int
    matches: tuple[tuple[int, int], ...]  # (left position, right position), right positions offset
    skipped_offers: int = 0
    skipped_matches: int = 0

    @property
    def right_count(self) -> int:
        return len(self.products) - self.left_count


@dataclass(frozen=True, slots=True)
class Scoring:
    """How one method ranks: the dense template, the lexical weights and candidates to re-rank."""

    template: str
    weights: HybridWeights
    rerank_candidates: int
    # IDF over the evaluated corpus: what the pipeline's snapshot holds after it loaded this catalog
    # (core/terms); False: uniform token weights, as lists scored before any snapshot.
    corpus_idf: bool = True


def default_data_dir() -> Path:
    return Path(str(files("simstream") / "data" / "abt-buy"))


def load_task(left: Path | None = None, right: Path | None = None, matches: Path | None = None) -> MatchingTask:
    """The two tables and their mapping; each file not given is the packaged Abt-Buy one."""
    data_dir = default_data_dir()
    left_path = left or data_dir / DEFAULT_FILES[0]
    right_path = right or data_dir / DEFAULT_FILES[1]
    matches_path = matches or data_dir / DEFAULT_FILES[2]
    left_offers, left_skipped = _read_offers(left_path)
    right_offers, right_skipped = _read_offers(right_path)
    if not left_offers or not right_offers:
        raise InputFileError(f"no usable offers in {left_path if not left_offers else right_path}")
    left_index = {offer_id: pos for pos, offer_id in enumerate(left_offers)}
    right_index = {offer_id: len(left_offers) + pos for pos, offer_id in enumerate(right_offers)}
    pairs, skipped_matches = _read_mapping(matches_path, left_index, right_index)
    if not pairs:
        raise InputFileError(f"{matches_path}: no id pair names an offer of both tables")
    return MatchingTask(
        left_name=left_path.stem,
        right_name=right_path.stem,
        products=(*left_offers.values(), *right_offers.values()),
        left_count=len(left_offers),
        matches=tuple(pairs),
        skipped_offers=left_skipped + right_skipped,
        skipped_matches=skipped_matches,
    )


def _read_offers(path: Path) -> tuple[dict[str, Product], int]:
    offers: dict[str, Product] = {}
    skipped = 0
    try:
        for row in read_catalog(path, fmt="csv"):
            try:
                product = Product(**row.product)
            except ValidationError:
                skipped += 1
                continue
            if row.product_id in offers:
                skipped += 1  # a repeated id: the first offer stands
                continue
            offers[row.product_id] = product
    except CatalogError as exc:
        raise InputFileError(f"{path}: {exc}") from exc
    return offers, skipped


def _read_mapping(
    path: Path, left_index: dict[str, int], right_index: dict[str, int]
) -> tuple[list[tuple[int, int]], int]:
    rows = [row for row in csv.reader(io.StringIO(read_text_file(path))) if row]
    pairs: dict[tuple[int, int], None] = {}
    skipped = 0
    for number, row in enumerate(rows):
        ids = [value.strip() for value in row[:2]]
        if len(ids) == 2 and ids[0] in left_index and ids[1] in right_index:
            pairs.setdefault((left_index[ids[0]], right_index[ids[1]]), None)
        elif number > 0:  # the first row is a header unless it names two offers
            skipped += 1
    return list(pairs), skipped


def half_of(task: MatchingTask, half: int, seed: int = 12) -> MatchingTask:
    """The task with only the matches of one random half (1 or 2) of its left offers: weights are
    chosen on one half and reported on the other. Every offer stays a candidate."""
    if half not in (1, 2):
        raise ValueError(f"half must be 1 or 2, got {half}")
    lefts = sorted({left for left, _ in task.matches})
    random.Random(seed).shuffle(lefts)
    first = set(lefts[: len(lefts) // 2])
    matches = tuple(pair for pair in task.matches if (pair[0] in first) == (half == 1))
    return dataclasses.replace(task, matches=matches)


# --- ranks and metrics (pure numpy) ------------------------------------------------------------


def match_ranks(
    scores: FloatMatrix, relevant: npt.NDArray[np.bool_], candidates: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    """Rank of the best-scoring relevant candidate of each query row (1 = first).

    ``scores``, ``relevant`` and ``candidates`` are (queries, catalog); a relevant entry must also be a
    candidate. Ties count against the match: rank = 1 + non-relevant candidates scoring >= its score.
    """
    if not (scores.shape == relevant.shape == candidates.shape):
        raise ValueError("scores, relevant and candidates must have the same shape")
    if not np.all(relevant.any(axis=1)) or np.any(relevant & ~candidates):
        raise ValueError("every query needs a relevant candidate, and relevant entries must be candidates")
    best = np.where(relevant, scores, -np.inf).max(axis=1, keepdims=True)
    competitors = candidates & ~relevant & (scores >= best)
    ranks: npt.NDArray[np.int64] = 1 + competitors.sum(axis=1).astype(np.int64)
    return ranks


def summarize_ranks(ranks: npt.NDArray[np.int64]) -> dict[str, float]:
    """recall@1, recall@10 and MRR of the given ranks, rounded to 4 digits."""
    if ranks.size == 0:
        raise ValueError("no queries to summarize")
    summary = {f"recall@{k}": float(np.mean(ranks <= k)) for k in RECALL_CUTOFFS}
    summary["mrr"] = float(np.mean(1.0 / ranks))
    return {name: round(value, 4) for name, value in summary.items()}


@dataclass(frozen=True, slots=True)
class _Direction:
    queries: npt.NDArray[np.int64]  # catalog positions of the queries
    relevant: npt.NDArray[np.bool_]  # (queries, catalog)
    cross_shop: npt.NDArray[np.bool_]  # candidate masks, (queries, catalog)
    whole_catalog: npt.NDArray[np.bool_]


def _directions(task: MatchingTask) -> dict[str, _Direction]:
    size = len(task.products)
    in_left = np.arange(size) < task.left_count
    out: dict[str, _Direction] = {}
    for name, forward in (("left_to_right", True), ("right_to_left", False)):
        targets: dict[int, list[int]] = {}
        for left_pos, right_pos in task.matches:
            query, target = (left_pos, right_pos) if forward else (right_pos, left_pos)
            targets.setdefault(query, []).append(target)
        queries = np.array(sorted(targets), dtype=np.int64)
        relevant = np.zeros((len(queries), size), dtype=np.bool_)
        for row, query in enumerate(queries):
            relevant[row, targets[int(query)]] = True
        other_shop = ~in_left if forward else in_left
        cross = np.broadcast_to(other_shop, relevant.shape).copy()
        whole = np.ones_like(relevant)
        whole[np.arange(len(queries)), queries] = False
        out[name] = _Direction(queries, relevant, cross, whole)
    return out


# --- scorings ------------------------------------------------------------------------------------


def _reranked(
    dense: FloatMatrix,
    candidates: npt.NDArray[np.bool_],
    queries: npt.NDArray[np.int64],
    profiles: Sequence[LexicalProfile],
    scoring: Scoring,
) -> FloatMatrix:
    """Dense scores, with each query's dense top-N candidates re-ranked by hybrid score above the rest."""
    masked = np.where(candidates, dense, -np.inf)
    if scoring.weights.is_dense_only:
        return masked.astype(np.float32)
    result = masked.copy()
    count = min(scoring.rerank_candidates, int(candidates.sum(axis=1).min()))
    top = np.argpartition(-masked, count - 1, axis=1)[:, :count]
    for row, query in enumerate(queries):
        chosen = top[row]
        hybrid = rerank_profiles(
            profiles[int(query)], [profiles[int(pos)] for pos in chosen], masked[row, chosen], scoring.weights
        )
        result[row, chosen] = hybrid + _RERANKED_OFFSET
    return result.astype(np.float32)


class _Evaluator:
    """Encodes each distinct template once per run and scores every method on the same task."""

    def __init__(self, task: MatchingTask, encode: Encode) -> None:
        self.task = task
        self._encode = encode
        self._vectors: dict[str, FloatMatrix] = {}
        self._texts: dict[str, list[str]] = {}
        self._profiles: dict[tuple[str, bool], list[LexicalProfile]] = {}
        self.directions = _directions(task)

    def texts(self, template: str) -> list[str]:
        if template not in self._texts:
            self._texts[template] = [build_text(product, template) for product in self.task.products]
        return self._texts[template]

    def vectors(self, template: str) -> FloatMatrix:
        if template not in self._vectors:
            self._vectors[template] = np.asarray(self._encode(self.texts(template)), dtype=np.float32)
        return self._vectors[template]

    def tfidf(self, template: str) -> dict[str, dict[str, dict[str, float]]]:
        matrix = TfidfMatrix([word_bag(text) for text in self.texts(template)])
        return self._ranked(lambda direction, _: matrix.similarities(direction.queries.tolist()))

    def dense(self, template: str) -> dict[str, dict[str, dict[str, float]]]:
        vectors = self.vectors(template)
        return self._ranked(lambda direction, _: vectors[direction.queries] @ vectors.T)

    def profiles(self, template: str, corpus_idf: bool) -> list[LexicalProfile]:
        """Each offer's lexical profile, IDF-weighted over this catalog or uniform; built once per run."""
        key = (template, corpus_idf)
        if key not in self._profiles:
            texts = self.texts(template)
            frequencies = DocumentFrequencies.of(map(lexical_tokens, texts)) if corpus_idf else None
            self._profiles[key] = [LexicalProfile.of(text, frequencies) for text in texts]
        return self._profiles[key]

    def hybrid(self, scoring: Scoring) -> dict[str, dict[str, dict[str, float]]]:
        vectors = self.vectors(scoring.template)
        profiles = self.profiles(scoring.template, scoring.corpus_idf)

        def score(direction: _Direction, candidates: npt.NDArray[np.bool_]) -> FloatMatrix:
            dense = vectors[direction.queries] @ vectors.T
            return _reranked(dense, candidates, direction.queries, profiles, scoring)

        return self._ranked(score)

    def min_score_table(self, scoring: Scoring) -> dict[str, list[dict[str, float]]]:
        """Per direction and MIN_SCORES threshold, over each query's best cross-shop candidate: the
        share of queries whose best scores at least that (``kept``), the share of those that are a
        true match (``precision``), and the share of queries kept with a true match (``recall``)."""
        vectors = self.vectors(scoring.template)
        profiles = self.profiles(scoring.template, scoring.corpus_idf)
        out: dict[str, list[dict[str, float]]] = {}
        for name, direction in self.directions.items():
            scores = _reranked(
                vectors[direction.queries] @ vectors.T, direction.cross_shop, direction.queries, profiles, scoring
            )
            best = scores.argmax(axis=1)
            rows = np.arange(len(best))
            top = scores[rows, best] - (0.0 if scoring.weights.is_dense_only else _RERANKED_OFFSET)
            matched = direction.relevant[rows, best]
            out[name] = [_kept(float(threshold), top, matched) for threshold in MIN_SCORES]
        return out

    def _ranked(
        self, score: Callable[[_Direction, npt.NDArray[np.bool_]], FloatMatrix]
    ) -> dict[str, dict[str, dict[str, float]]]:
        """{direction: {setting: metrics}} for one scoring."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for name, direction in self.directions.items():
            out[name] = {}
            for setting in SETTINGS:
                candidates = direction.cross_shop if setting == "cross_shop" else direction.whole_catalog
                scores = np.asarray(score(direction, candidates), dtype=np.float32)
                out[name][setting] = summarize_ranks(match_ranks(scores, direction.relevant, candidates))
        return out


def _kept(threshold: float, top: FloatMatrix, matched: npt.NDArray[np.bool_]) -> dict[str, float]:
    kept = top >= threshold
    precision = float(matched[kept].mean()) if kept.any() else 1.0
    return {
        "min_score": threshold,
        "kept": round(float(kept.mean()), 4),
        "precision": round(precision, 4),
        "recall": round(float((matched & kept).mean()), 4),
    }


def evaluate(
    task: MatchingTask,
    encode: Encode,
    *,
    eval_scoring: Scoring,
    default_scoring: Scoring,
) -> dict[str, Any]:
    """Every method on ``task``; the JSON object of ``simstream eval`` (see :func:`run_eval`)."""
    evaluator = _Evaluator(task, encode)
    by_method = {
        "tfidf": evaluator.tfidf(eval_scoring.template),
        "dense": evaluator.dense(eval_scoring.template),
        "hybrid": evaluator.hybrid(eval_scoring),
        "default": evaluator.hybrid(default_scoring),
    }
    result: dict[str, Any] = {method: by_method[method]["left_to_right"] for method in METHODS}
    result["directions"] = {
        direction: {method: by_method[method][direction] for method in METHODS}
        for direction in ("left_to_right", "right_to_left")
    }
    result["data"] = {
        "left": task.left_name,
        "right": task.right_name,
        "left_offers": task.left_count,
        "right_offers": task.right_count,
        "matches": len(task.matches),
        "queries": {name: len(d.queries) for name, d in evaluator.directions.items()},
        "skipped_offers": task.skipped_offers,
        "skipped_matches": task.skipped_matches,
    }
    result["min_score"] = evaluator.min_score_table(default_scoring)
    result["scorings"] = {
        "eval": _describe(eval_scoring),
        "default": _describe(default_scoring),
    }
    return result


def _describe(scoring: Scoring) -> dict[str, Any]:
    return {
        "template": scoring.template,
        "code_weight": scoring.weights.code,
        "lexical_weight": scoring.weights.lexical,
        "rerank_candidates": scoring.rerank_candidates,
        "corpus_idf": scoring.corpus_idf,
    }


def default_scoring(settings: Settings) -> Scoring:
    """The pipeline's scoring under ``settings``."""
    return Scoring(settings.text_template, HybridWeights.from_settings(settings), settings.rerank_candidates)


def run_eval(
    settings: Settings,
    *,
    left: Path | None = None,
    right: Path | None = None,
    matches: Path | None = None,
    template: str | None = None,
    encode: Encode | None = None,
    half: int | None = None,
    seed: int = 12,
) -> dict[str, Any]:
    """Load the data, encode with the settings' model, and evaluate every method.

    ``tfidf``/``dense``/``hybrid`` use ``template`` (default :data:`EVAL_TEMPLATE`) and ``hybrid`` the
    measured default weights; ``default`` uses the settings. ``encode`` replaces the model (tests pass a
    fake).
    """
    task = load_task(left, right, matches)
    if half is not None:
        task = half_of(task, half, seed)
    model_id = None
    if encode is None:
        from simstream.core.encoder import TransformerEncoder

        encoder = TransformerEncoder.from_settings(settings)
        encode, model_id = encoder.encode, encoder.model_id
    reference = Scoring(template or EVAL_TEMPLATE, HybridWeights(), DEFAULT_RERANK_CANDIDATES)
    started = time.perf_counter()
    result = evaluate(task, encode, eval_scoring=reference, default_scoring=default_scoring(settings))
    result["model"] = model_id
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def format_eval_table(result: dict[str, Any]) -> str:
    """Both directions, every method and setting, as an aligned text table."""
    data = result["data"]
    names = {
        "left_to_right": f"{data['left']} -> {data['right']}",
        "right_to_left": f"{data['right']} -> {data['left']}",
    }
    columns = [(setting, metric) for setting in SETTINGS for metric in ("recall@1", "recall@10", "mrr")]
    header = f"{'direction':<14} {'method':<8} " + " ".join(f"{s[:5] + ' ' + m:>16}" for s, m in columns)
    lines = [header, "-" * len(header)]
    for direction, label in names.items():
        for method in METHODS:
            row = result["directions"][direction][method]
            values = " ".join(f"{row[s][m]:>16.4f}" for s, m in columns)
            lines.append(f"{label:<14} {method:<8} {values}")
    lines.append("")
    lines.append("SIMSTREAM_MIN_SCORE on the default method's best cross-shop candidate: kept / precision / recall")
    for direction, label in names.items():
        cells = "  ".join(
            f"{row['min_score']:.1f}: {row['kept']:.2f}/{row['precision']:.3f}/{row['recall']:.3f}"
            for row in result["min_score"][direction]
        )
        lines.append(f"{label:<14} {cells}")
    lines.append("")
    for key, scoring in result["scorings"].items():
        lines.append(
            f"{key:<8} template={scoring['template']!r} code_weight={scoring['code_weight']} "
            f"lexical_weight={scoring['lexical_weight']} rerank_candidates={scoring['rerank_candidates']} "
            f"corpus_idf={scoring['corpus_idf']}"
        )
    lines.append(
        f"queries: {data['queries']['left_to_right']} / {data['queries']['right_to_left']}; "
        f"offers {data['left_offers']} + {data['right_offers']}, matches {data['matches']} "
        f"(skipped: {data['skipped_offers']} offers, {data['skipped_matches']} mapping rows); "
        f"model {result.get('model')}"
    )
    return "\n".join(lines)


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--left", type=Path, default=None, help="left offer table (default: packaged Abt.csv)")
    parser.add_argument("--right", type=Path, default=None, help="right offer table (default: packaged Buy.csv)")
    parser.add_argument(
        "--matches", type=Path, default=None, help="two-column id mapping left,right (default: Abt-Buy's)"
    )
    parser.add_argument(
        "--template", default=None, help=f"text template of tfidf/dense/hybrid (default {EVAL_TEMPLATE!r})"
    )
    parser.add_argument(
        "--half", type=int, choices=(1, 2), default=None, help="only the matches of one random half of the left offers"
    )
    parser.add_argument("--seed", type=int, default=12, help="the random split of --half (default 12)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    try:
        result = run_eval(
            settings,
            left=args.left,
            right=args.right,
            matches=args.matches,
            template=args.template,
            half=args.half,
            seed=args.seed,
        )
    except SimstreamError as exc:
        print(f"simstream eval: {exc}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(format_eval_table(result))
    return 0
