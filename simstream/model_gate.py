"""The quality gate before a model promotion (`simstream model promote`, `simstream model gate`).

Two measures, side by side for the live and the shadow model:

- ``simstream eval`` on labelled pairs (default: the bundled Abt-Buy): recall@1 and MRR of the lists'
  own scoring (the ``default`` method) and of plain cosine (``dense``), both directions, cross-shop and
  whole catalog;
- on the live catalog, the overlap@K of each sampled product's current list (the live model's) with the
  exact list the shadow model's vectors give (how much storefronts will see change).

The shadow passes unless its mean recall@1 of the ``default`` method, over the four figures, is below
the live model's by more than a tolerance, 0 by default: the figures are deterministic (same pairs,
same model, same numbers), so any drop is a model that ranks these pairs worse. A small labelled set
is noisier as a sample of the catalog; its owner may allow a margin (``--tolerance``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import redis

from simstream.core.audit import exact_top_k, overlap_at_k, read_in_chunks
from simstream.core.encoder import Encoder
from simstream.core.generations import Generations
from simstream.core.list_store import ListStore
from simstream.core.similarity import SimilarityPolicy
from simstream.core.terms import TermsStore
from simstream.core.vector_store import RedisVectorStore
from simstream.eval_quality import SETTINGS, run_eval
from simstream.schemas.settings import Settings

TOLERANCE = 0.0
DIRECTIONS = ("left_to_right", "right_to_left")
GATED_METHOD = "default"


@dataclass(frozen=True, slots=True)
class Labels:
    """Labelled pairs for ``simstream eval`` (None: the bundled Abt-Buy files)."""

    left: Path | None = None
    right: Path | None = None
    matches: Path | None = None


@dataclass(frozen=True, slots=True)
class GateReport:
    live_model: str
    shadow_model: str
    live: dict[str, Any]  # eval result of the live model
    shadow: dict[str, Any]
    overlap_mean: float | None  # None: no live lists to compare with
    overlap_min: float | None
    sampled: int
    seconds: float
    tolerance: float = TOLERANCE

    @property
    def live_score(self) -> float:
        return gate_score(self.live)

    @property
    def shadow_score(self) -> float:
        return gate_score(self.shadow)

    @property
    def passed(self) -> bool:
        return self.shadow_score >= self.live_score - self.tolerance

    def as_dict(self) -> dict[str, Any]:
        return {
            "live_model": self.live_model,
            "shadow_model": self.shadow_model,
            "live_score": round(self.live_score, 4),
            "shadow_score": round(self.shadow_score, 4),
            "tolerance": self.tolerance,
            "passed": self.passed,
            "overlap_at_k_mean": self.overlap_mean,
            "overlap_at_k_min": self.overlap_min,
            "sampled": self.sampled,
            "seconds": round(self.seconds, 1),
            "live": _figures(self.live),
            "shadow": _figures(self.shadow),
        }


def gate_score(result: Mapping[str, Any]) -> float:
    """Mean recall@1 of the lists' scoring over both directions, cross-shop and whole catalog."""
    directions = result["directions"]
    values = [directions[d][GATED_METHOD][s]["recall@1"] for d in DIRECTIONS for s in SETTINGS]
    return float(np.mean(values))


def _figures(result: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}
    for method in ("dense", GATED_METHOD):
        for direction in DIRECTIONS:
            for setting in SETTINGS:
                row = result["directions"][direction][method][setting]
                figures[f"{method} {direction} {setting}"] = {"recall@1": row["recall@1"], "mrr": row["mrr"]}
    return figures


def run_gate(
    settings: Settings,
    client: redis.Redis,
    generations: Generations,
    live_encoder: Encoder,
    shadow_encoder: Encoder,
    *,
    labels: Labels | None = None,
    sample: int = 500,
    seed: int = 0,
    tolerance: float = TOLERANCE,
) -> GateReport:
    assert generations.shadow is not None
    labels = labels or Labels()
    started = time.perf_counter()
    live_settings = generations.live.settings(settings)
    shadow_settings = generations.shadow.settings(settings)
    live = run_eval(
        live_settings, left=labels.left, right=labels.right, matches=labels.matches, encode=live_encoder.encode
    )
    shadow = run_eval(
        shadow_settings, left=labels.left, right=labels.right, matches=labels.matches, encode=shadow_encoder.encode
    )
    overlaps = _list_overlaps(settings, client, live_settings, shadow_settings, sample, seed)
    return GateReport(
        generations.live.model_id,
        generations.shadow.model_id,
        live,
        shadow,
        None if not overlaps else round(float(np.mean(overlaps)), 4),
        None if not overlaps else round(min(overlaps), 4),
        len(overlaps),
        time.perf_counter() - started,
        tolerance,
    )


def _list_overlaps(
    settings: Settings, client: redis.Redis, live: Settings, shadow: Settings, sample: int, seed: int
) -> list[float]:
    """overlap@K of sampled current lists with the exact lists of the shadow model's vectors."""
    live_store = RedisVectorStore.from_settings(live, client)
    shadow_store = RedisVectorStore.from_settings(shadow, client)
    lists = ListStore.from_settings(live, client)
    ids = sorted(live_store.indexed_product_ids())
    if not ids:
        return []
    chosen = sorted(random.Random(seed).sample(ids, min(sample, len(ids))))
    current = read_in_chunks(lists.read_lists, chosen)
    chosen = [pid for pid in chosen if pid in current]
    vectors = read_in_chunks(shadow_store.embeddings, ids)
    texts = read_in_chunks(live_store.texts, ids)
    policy = replace(SimilarityPolicy.from_settings(settings), terms=TermsStore(client, lists.keys).current())
    categories = None
    if policy.same_category_only:
        categories = {pid: meta.get("category", "") for pid, meta in read_in_chunks(live_store.metadata, ids).items()}
    exact = exact_top_k(vectors, policy, [pid for pid in chosen if pid in vectors], categories, texts)
    return [overlap_at_k(current[pid].items, exact[pid]) for pid in chosen if pid in exact]


def format_gate(report: GateReport) -> str:
    rows = report.as_dict()
    lines = [
        f"live:   {report.live_model}",
        f"shadow: {report.shadow_model}",
        f"{'recall@1 / MRR':<40} {'live':>16} {'shadow':>16}",
    ]
    for name, live in rows["live"].items():
        shadow = rows["shadow"][name]
        lines.append(
            f"{name:<40} {live['recall@1']:>8.4f}/{live['mrr']:.4f} {shadow['recall@1']:>8.4f}/{shadow['mrr']:.4f}"
        )
    lines.append(
        f"gate: mean recall@1 of the lists' scoring {rows['live_score']:.4f} live, {rows['shadow_score']:.4f} shadow "
        f"(tolerance {report.tolerance}): {'PASSED' if report.passed else 'REFUSED, the shadow model is worse'}"
    )
    if report.overlap_mean is None:
        lines.append("overlap with the live lists: no live lists to compare with")
    else:
        lines.append(
            f"overlap@K of the live lists with the shadow model's exact lists, {report.sampled} products: "
            f"mean {report.overlap_mean:.4f}, min {report.overlap_min:.4f}"
        )
    lines.append(f"gate took {report.seconds:.1f} s")
    return "\n".join(lines)
