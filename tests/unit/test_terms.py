"""The term-statistics snapshot of core/terms: content-addressed, frozen, and what the score uses."""

from __future__ import annotations

import math

import orjson
import pytest

from simstream.core.errors import StoreError
from simstream.core.hybrid import HybridWeights, ProfileCache, pair_score, profile_tokens
from simstream.core.lexical import DocumentFrequencies
from simstream.core.list_store import MemoryListStore
from simstream.core.similarity import SimilarityPolicy
from simstream.core.terms import VERSION_PREFIX, TermStats, scoring_id

CATALOG = ["Sony Bravia KDL-40 TV", "Samsung LN40 TV", "Sony PS-LX350H turntable", "Samsung TV stand"]


def snapshot(texts: list[str] = CATALOG) -> TermStats:
    return TermStats.of(map(profile_tokens, texts))


def test_a_snapshot_counts_documents_once_per_token_and_is_named_by_its_content() -> None:
    stats = TermStats.of([["tv", "tv", "sony"], ["tv"]])
    assert stats.documents == 2 and stats.counts == {"sony": 1, "tv": 2}
    assert stats.version.startswith(VERSION_PREFIX)
    assert TermStats.of([["tv"], ["sony", "tv"]]).version == stats.version  # order does not matter
    assert TermStats.of([["tv", "sony"], ["tv"], ["radio"]]).version != stats.version


def test_its_idf_is_the_one_document_frequencies_give() -> None:
    documents = [profile_tokens(text) for text in CATALOG]
    live = DocumentFrequencies.of(documents)
    frozen = TermStats.of(documents)
    for token in ["tv", "sony", "~#tv", "never-seen"]:
        assert frozen.idf(token) == pytest.approx(live.idf(token))
    assert frozen.idf("never-seen") == pytest.approx(math.log(5) + 1)


def test_encode_and_decode_round_trip_and_a_changed_blob_is_refused() -> None:
    stats = snapshot()
    again = TermStats.decode(stats.encode())
    assert (again.version, again.documents, dict(again.counts)) == (stats.version, stats.documents, dict(stats.counts))
    edited = orjson.loads(stats.encode())
    edited["counts"]["tv"] += 1
    with pytest.raises(StoreError, match="digest"):
        TermStats.decode(orjson.dumps(edited))
    with pytest.raises(StoreError, match="not readable"):
        TermStats.decode(b"{")


def test_lists_name_their_snapshot_in_the_model_field() -> None:
    stats = snapshot()
    assert scoring_id("m@r", None) == "m@r"
    assert scoring_id("m@r", stats) == f"m@r+{stats.version}"
    policy = SimilarityPolicy(top_k=5, terms=stats)
    assert policy.scoring_id("m@r") == f"m@r+{stats.version}"


def test_idf_weighting_moves_the_score_towards_rare_shared_tokens() -> None:
    weights = HybridWeights(code=0.0, lexical=1.0)
    catalog = [*CATALOG, *(f"Samsung accessory {i}" for i in range(20))]
    stats = snapshot(catalog)
    # Sharing the common "samsung" counts for less once IDF knows it is common; sharing "bravia" for more.
    common = ("Samsung LN40 TV", "Samsung TV stand")
    rare = ("Sony Bravia KDL-40 TV", "Bravia KDL-46 TV")
    uniform_gap = pair_score(*rare, 0.5, weights) - pair_score(*common, 0.5, weights)
    idf_gap = pair_score(*rare, 0.5, weights, stats) - pair_score(*common, 0.5, weights, stats)
    assert idf_gap > uniform_gap


def test_profiles_are_cached_per_snapshot() -> None:
    cache = ProfileCache()
    one, two = snapshot(), snapshot(CATALOG[:2])
    text = "Sony Bravia KDL-40 TV"
    assert cache.get(text, one) is cache.get(text, one)
    assert cache.get(text, one).token_weights != cache.get(text, two).token_weights
    assert cache.get(text).token_weights != cache.get(text, one).token_weights
    assert len(cache) == 3


def test_memory_list_store_reads_the_watched_key_with_prepare() -> None:
    lists = MemoryListStore()
    assert lists.prepare({}, watch=["terms:current"]).watched == (None,)
    lists.strings["terms:current"] = "terms-abc"
    assert lists.prepare({}, watch=["terms:current", "models"]).watched == ("terms-abc", None)
