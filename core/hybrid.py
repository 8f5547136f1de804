"""Hybrid similarity: the dense cosine, corrected by lexical evidence (shared model codes, shared tokens).

The pipeline asks the vector store for the dense top-N candidates of a product and re-ranks them here;
only the two texts and the dense score of each pair are needed, so a changed product never forces a
global recomputation. The score is a weighted mean that stays on the cosine's scale (at most 1):

    score = (dense + code_weight * shares_model_code + lexical_weight * tfidf_cosine)
            / (1 + code_weight + lexical_weight)

``shares_model_code`` is 1.0 when the two texts have a normalised model code in common
("PS-LX350H" = "PSLX350H"), STEM_MATCH_CREDIT when they share a code only up to trailing letters
("DLE0442WH" ~ "DLE0442W"), else 0.0. ``tfidf_cosine`` is the cosine of the texts' token vectors
(words, model codes and character trigrams, core/lexical), IDF-weighted by a term-statistics snapshot
(core/terms) when one is given, uniform otherwise. Both weights at 0 give the dense cosine
unchanged. The defaults weigh the three signals equally (1, 1): chosen on one random half of Abt-Buy's
matches and reported on the other (README, "What a similar-items list is"); no training.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from simstream.core.lexical import (
    Idf,
    code_stem,
    cosine,
    lexical_tokens,
    model_codes,
    tfidf_weights,
)
from simstream.core.terms import TermStats
from simstream.core.vector_store import Neighbor

if TYPE_CHECKING:
    from simstream.schemas.settings import Settings

DEFAULT_CODE_WEIGHT: Final = 1.0
DEFAULT_LEXICAL_WEIGHT: Final = 1.0
# Codes that agree up to a trailing letter suffix ("DLE0442WH" vs "DLE0442W") are usually the same
# model in another colour or region: half the credit of an exact match (a design choice, not tuned).
STEM_MATCH_CREDIT: Final = 0.5
# Dense candidates re-ranked per product: 20 lost 0.5-4.5 points of recall@1 on Abt-Buy, 100 gained <1.
DEFAULT_RERANK_CANDIDATES: Final = 50
# Profiles of stored product texts kept in memory (about 80 tokens, 10 KB, for a title-length text:
# words and trigrams): a refresh re-ranks the same neighbourhoods over and over. The cache is keyed by
# a digest of the text and the snapshot (never the text itself) and bounded twice: in entries and in
# the tokens its profiles hold in total (4M tokens: about 500 MB).
PROFILE_CACHE_SIZE: Final = 100_000
PROFILE_CACHE_TOKENS: Final = 4_000_000
# Lexical evidence is taken from the text's first characters only: the encoder reads no more than
# its first max_seq_length (256) tokens either, and a stored text can be a 250,000-character blob.
PROFILE_MAX_CHARS: Final = 4_096
# Scores are compared at this precision when sorting, so float noise never beats the id tie-break.
TIE_DECIMALS: Final = 12

Scores = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class HybridWeights:
    code: float = DEFAULT_CODE_WEIGHT  # bonus for a shared model code
    lexical: float = DEFAULT_LEXICAL_WEIGHT  # weight of the TF-IDF cosine

    def __post_init__(self) -> None:
        if self.code < 0 or self.lexical < 0:
            raise ValueError(f"hybrid weights must not be negative, got code={self.code} lexical={self.lexical}")

    @classmethod
    def from_settings(cls, settings: Settings) -> HybridWeights:
        return cls(code=settings.hybrid_code_weight, lexical=settings.hybrid_lexical_weight)

    @property
    def is_dense_only(self) -> bool:
        return self.code == 0 and self.lexical == 0

    def upper_bound(self, dense: float) -> float:
        """The highest hybrid score a pair with this dense score can reach (full code and token match)."""
        return (dense + self.code + self.lexical) / (1.0 + self.code + self.lexical)


@dataclass(frozen=True, slots=True, eq=False)
class LexicalProfile:
    """What re-ranking needs of one text, computed once: its model codes and its unit token vector."""

    codes: frozenset[str]
    code_stems: frozenset[str]
    token_weights: Mapping[str, float]

    @classmethod
    def of(cls, text: str, frequencies: Idf | None = None) -> LexicalProfile:
        codes = model_codes(text)
        stems = frozenset(stem for stem in map(code_stem, codes) if stem)
        return cls(frozenset(codes), stems, tfidf_weights(lexical_tokens(text), frequencies))

    def code_match(self, other: LexicalProfile) -> float:
        """1.0 for a shared model code, STEM_MATCH_CREDIT for a shared stem only, else 0.0."""
        if self.codes & other.codes:
            return 1.0
        return STEM_MATCH_CREDIT if self.code_stems & other.code_stems else 0.0


def rerank_profiles(
    query: LexicalProfile,
    candidates: Sequence[LexicalProfile],
    dense_scores: Sequence[float] | npt.NDArray[np.floating],
    weights: HybridWeights,
) -> Scores:
    """Hybrid scores of ``candidates`` for ``query``, in the candidates' order (the caller sorts)."""
    dense = np.asarray(dense_scores, dtype=np.float64)
    if dense.shape != (len(candidates),):
        raise ValueError(f"{len(candidates)} candidates but dense scores of shape {dense.shape}")
    if weights.is_dense_only:
        return dense.copy()
    shared_code = np.fromiter(
        (query.code_match(candidate) for candidate in candidates),
        dtype=np.float64,
        count=len(candidates),
    )
    lexical = np.fromiter(
        (cosine(query.token_weights, candidate.token_weights) for candidate in candidates),
        dtype=np.float64,
        count=len(candidates),
    )
    total = dense + weights.code * shared_code + weights.lexical * lexical
    result: Scores = total / (1.0 + weights.code + weights.lexical)
    return result


def rerank(
    query_text: str,
    candidate_texts: Sequence[str],
    dense_scores: Sequence[float] | npt.NDArray[np.floating],
    weights: HybridWeights,
    frequencies: Idf | None = None,
) -> Scores:
    """Hybrid scores of the candidates (dense top-N from the vector store) for one query text.

    Costs O(total tokens) in Python: 50 title-length candidates take about 2 ms on a busy 2-core CPU,
    mostly building profiles; keep a :class:`LexicalProfile` per product to save that part.
    """
    query = LexicalProfile.of(query_text, frequencies)
    candidates = [LexicalProfile.of(text, frequencies) for text in candidate_texts]
    return rerank_profiles(query, candidates, dense_scores, weights)


def profile_tokens(text: str) -> list[str]:
    """The tokens a text's profile weighs: what a term-statistics snapshot counts (core/terms)."""
    return lexical_tokens(text[:PROFILE_MAX_CHARS])


class ProfileCache:
    """Least-recently-used profiles by text digest, at most ``max_entries`` of them holding at most
    ``max_tokens`` token weights together. Thread-safe: the HTTP thread never uses it, tests may."""

    def __init__(self, max_entries: int = PROFILE_CACHE_SIZE, max_tokens: int = PROFILE_CACHE_TOKENS) -> None:
        self.max_entries = max_entries
        self.max_tokens = max_tokens
        self._profiles: OrderedDict[bytes, LexicalProfile] = OrderedDict()
        self._tokens = 0
        self._lock = threading.Lock()

    def get(self, text: str, terms: TermStats | None = None) -> LexicalProfile:
        text = text[:PROFILE_MAX_CHARS]
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16)
        if terms is not None:
            digest.update(terms.version.encode())
        key = digest.digest()
        with self._lock:
            found = self._profiles.get(key)
            if found is not None:
                self._profiles.move_to_end(key)
                return found
        profile = LexicalProfile.of(text, terms)
        with self._lock:
            if key not in self._profiles:
                self._profiles[key] = profile
                self._tokens += len(profile.token_weights)
            while self._profiles and (len(self._profiles) > self.max_entries or self._tokens > self.max_tokens):
                _, evicted = self._profiles.popitem(last=False)
                self._tokens -= len(evicted.token_weights)
        return profile

    def __len__(self) -> int:
        return len(self._profiles)

    @property
    def tokens(self) -> int:
        return self._tokens

    def clear(self) -> None:
        with self._lock:
            self._profiles.clear()
            self._tokens = 0


PROFILES: Final = ProfileCache()


def text_profile(text: str, terms: TermStats | None = None) -> LexicalProfile:
    """The profile of a product text as the pipeline scores it: the first PROFILE_MAX_CHARS
    characters, token weights IDF-weighted by the snapshot ``terms`` (uniform without one).

    The snapshot is frozen, so a pair's score depends on its two texts and the snapshot alone: a list
    stays exact as the catalog changes around it, and ``verify`` recomputes it with the same snapshot.
    """
    return PROFILES.get(text, terms)


def rank_pool(
    query_text: str,
    pool: Sequence[Neighbor],
    texts: Mapping[str, str],
    weights: HybridWeights,
    top_k: int,
    terms: TermStats | None = None,
) -> list[Neighbor]:
    """The top-K of a dense candidate pool by hybrid score (best first, ties by product id).

    ``pool`` holds dense cosines (the vector store's KNN); ``texts`` the stored text of each candidate
    (a missing one scores on its dense evidence only).
    """
    if weights.is_dense_only:
        scored = [(n.score, n.product_id) for n in pool]
    else:
        hybrid = rerank_profiles(
            text_profile(query_text, terms),
            [text_profile(texts.get(n.product_id, ""), terms) for n in pool],
            [n.score for n in pool],
            weights,
        )
        scored = [(float(score), n.product_id) for score, n in zip(hybrid, pool, strict=True)]
    scored.sort(key=lambda pair: (-round(pair[0], TIE_DECIMALS), pair[1]))
    return [Neighbor(pid, score) for score, pid in scored[:top_k]]


def pair_score(
    left_text: str, right_text: str, dense: float, weights: HybridWeights, terms: TermStats | None = None
) -> float:
    """The hybrid score of one pair, as :func:`rank_pool` scores it."""
    if weights.is_dense_only:
        return dense
    return profile_pair_score(text_profile(left_text, terms), text_profile(right_text, terms), dense, weights)


def profile_pair_score(left: LexicalProfile, right: LexicalProfile, dense: float, weights: HybridWeights) -> float:
    """:func:`rerank_profiles` for one candidate, in plain floats: the same float64 operations in the same
    order (so the same bits), without the arrays that cost more than the sum for a single pair."""
    if weights.is_dense_only:
        return dense
    total = (
        dense
        + weights.code * left.code_match(right)
        + weights.lexical * cosine(left.token_weights, right.token_weights)
    )
    return total / (1.0 + weights.code + weights.lexical)
