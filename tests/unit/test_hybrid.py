"""Hybrid re-ranking of dense candidates (core/hybrid.py)."""

from __future__ import annotations

import numpy as np
import pytest

from simstream.core.hybrid import (
    PROFILE_MAX_CHARS,
    PROFILES,
    STEM_MATCH_CREDIT,
    HybridWeights,
    LexicalProfile,
    ProfileCache,
    rerank,
    rerank_profiles,
    text_profile,
)
from simstream.core.lexical import DocumentFrequencies, lexical_tokens
from simstream.schemas.settings import Settings

QUERY = "Sony Turntable - PSLX350H"
CANDIDATES = ["Sony Turntable - PSLX250H", "Sony PS-LX350H Belt Drive Turntable", "Bose Speaker - AM53BK"]


def test_a_shared_model_code_outranks_a_higher_dense_score() -> None:
    scores = rerank(QUERY, CANDIDATES, [0.95, 0.80, 0.30], HybridWeights(code=1.0, lexical=0.25))
    assert int(np.argmax(scores)) == 1


def test_zero_weights_leave_the_dense_scores() -> None:
    dense = np.array([0.9, 0.1, -0.2])
    np.testing.assert_array_equal(rerank(QUERY, CANDIDATES, dense, HybridWeights(0.0, 0.0)), dense)


def test_scores_stay_on_the_cosine_scale() -> None:
    scores = rerank(QUERY, [QUERY, *CANDIDATES], [1.0, 0.9, 0.8, 0.3], HybridWeights(code=2.0, lexical=1.0))
    assert scores.max() == pytest.approx(1.0)
    assert np.all(scores <= 1.0 + 1e-12)


def test_weighted_mean_formula() -> None:
    weights = HybridWeights(code=1.0, lexical=0.5)
    query = LexicalProfile.of("Acme Widget - AB1234")
    candidate = LexicalProfile.of("Other Thing - AB1234")
    lexical = sum(w * candidate.token_weights.get(t, 0.0) for t, w in query.token_weights.items())
    (score,) = rerank_profiles(query, [candidate], [0.5], weights)
    assert score == pytest.approx((0.5 + 1.0 + 0.5 * lexical) / 2.5)


def test_code_match_levels() -> None:
    query = LexicalProfile.of("LG Dryer - DLE0442WH")
    assert query.code_match(LexicalProfile.of("LG DLE0442WH dryer")) == 1.0
    assert query.code_match(LexicalProfile.of("LG DLE0442W dryer")) == STEM_MATCH_CREDIT
    assert query.code_match(LexicalProfile.of("LG DLE0443W dryer")) == 0.0
    assert query.code_match(LexicalProfile.of("LG dryer")) == 0.0


def test_idf_weighting_changes_the_lexical_part_only() -> None:
    texts = [QUERY, *CANDIDATES]
    frequencies = DocumentFrequencies.of(lexical_tokens(text) for text in texts)
    weights = HybridWeights(code=0.0, lexical=1.0)
    plain = rerank(QUERY, CANDIDATES, [0.5, 0.5, 0.5], weights)
    weighted = rerank(QUERY, CANDIDATES, [0.5, 0.5, 0.5], weights, frequencies)
    assert not np.allclose(plain, weighted)
    assert weighted[2] == pytest.approx(plain[2]) == pytest.approx(0.25)  # nothing shared: dense / 2


def test_rerank_equals_rerank_profiles() -> None:
    weights = HybridWeights()
    expected = rerank_profiles(
        LexicalProfile.of(QUERY), [LexicalProfile.of(text) for text in CANDIDATES], [0.7, 0.6, 0.5], weights
    )
    np.testing.assert_array_equal(rerank(QUERY, CANDIDATES, [0.7, 0.6, 0.5], weights), expected)


def test_empty_candidates_and_shape_mismatch() -> None:
    assert rerank(QUERY, [], [], HybridWeights()).shape == (0,)
    with pytest.raises(ValueError, match="candidates"):
        rerank(QUERY, CANDIDATES, [0.1], HybridWeights())


def test_weights_validated_and_read_from_settings() -> None:
    with pytest.raises(ValueError, match="negative"):
        HybridWeights(code=-0.1)
    settings = Settings(hybrid_code_weight=0.3, hybrid_lexical_weight=0.7)
    assert HybridWeights.from_settings(settings) == HybridWeights(code=0.3, lexical=0.7)
    assert HybridWeights.from_settings(Settings()) == HybridWeights()


def test_profile_cache_is_bounded_in_entries() -> None:
    cache = ProfileCache(max_entries=3, max_tokens=10_000)
    for i in range(10):
        cache.get(f"Acme Widget model AB{i}234")
    assert len(cache) == 3


def test_profile_cache_is_bounded_in_tokens_and_returns_the_same_profile() -> None:
    texts = [" ".join(f"w{i}x{j}" for j in range(20)) for i in range(10)]
    per_text = len(LexicalProfile.of(texts[0]).token_weights)
    cache = ProfileCache(max_entries=1_000, max_tokens=2 * per_text + per_text // 2)
    for text in texts:
        cache.get(text)
    assert cache.tokens <= cache.max_tokens and len(cache) == 2
    assert cache.get(texts[-1]) is cache.get(texts[-1])
    assert cache.get(texts[-1]).token_weights == LexicalProfile.of(texts[-1]).token_weights


def test_a_huge_text_is_profiled_on_its_first_characters_only() -> None:
    head = "Sony Turntable PSLX350H "
    huge = head + " ".join(f"filler{i}" for i in range(50_000))  # ~440,000 characters
    profile = ProfileCache().get(huge)
    assert "pslx350h" in profile.codes
    assert len(profile.token_weights) <= PROFILE_MAX_CHARS // 2
    assert profile.token_weights == ProfileCache().get(huge[:PROFILE_MAX_CHARS]).token_weights


def test_text_profile_is_the_shared_bounded_cache() -> None:
    assert text_profile(QUERY) is text_profile(QUERY)
    assert len(PROFILES) <= PROFILES.max_entries
