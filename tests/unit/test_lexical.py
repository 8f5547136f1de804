"""Tokens, model codes and TF-IDF of core/lexical.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simstream.core.lexical import (
    DocumentFrequencies,
    TfidfMatrix,
    char_trigrams,
    code_stem,
    cosine,
    is_model_code,
    lexical_tokens,
    model_codes,
    tfidf_weights,
    word_bag,
    word_tokens,
)


def test_word_tokens_are_lower_case_letter_digit_runs() -> None:
    assert word_tokens("Sony Turntable - PSLX350H/ Belt_Drive") == ["sony", "turntable", "pslx350h", "belt", "drive"]


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("Sony Turntable - PSLX350H", ["pslx350h"]),
        ("Sony PS-LX350H", ["pslx350h", "lx350h"]),
        ("Sharp LC-32D64U 32' LCD", ["lc32d64u", "32d64u"]),
        ("Apple MacBook Pro - MB470LL/A", ["mb470lla", "mb470ll"]),
        ("Netgear GS724TP-100NAS", ["gs724tp100nas", "gs724tp"]),
        ("Garmin 010-00715-20", ["0100071520", "00715"]),
        ("Sirius Home Antenna - 14240", ["14240"]),
    ],
)
def test_model_codes_are_normalised_and_split(text: str, codes: list[str]) -> None:
    assert model_codes(text) == codes


@pytest.mark.parametrize("token", ["1080p", "250gb", "42in", "2008", "hd1", "black", "500w"])
def test_quantities_years_and_words_are_not_codes(token: str) -> None:
    assert not is_model_code(token)


def test_same_code_written_differently_matches() -> None:
    assert set(model_codes("Panasonic KX-TS3282B Corded Phone")) & set(model_codes("Phone - KXTS3282B"))


@pytest.mark.parametrize(
    ("code", "stem"),
    [("dle0442wh", "dle0442"), ("dle0442w", "dle0442"), ("14240", "14240"), ("ab12cd", "ab12"), ("x1abc", None)],
)
def test_code_stem_drops_trailing_letters(code: str, stem: str | None) -> None:
    assert code_stem(code) == stem


def test_word_bag_adds_joined_codes_not_already_words() -> None:
    assert word_bag("Sharp LC-32D64U") == ["sharp", "lc", "32d64u", "lc32d64u"]
    # The joined code is already a word here: it is not counted twice.
    assert word_bag("LC-32D64U or lc32d64u").count("lc32d64u") == 1


def test_lexical_tokens_are_the_word_bag_and_marked_trigrams_of_each_word() -> None:
    assert char_trigrams("tv") == ["#tv", "tv#"]
    assert lexical_tokens("TV LC-32") == ["tv", "lc", "32", "lc32", "~#tv", "~tv#", "~#lc", "~lc#", "~#32", "~32#"]
    # A trigram never counts as the word it spells: "pod" inside "ipod" is not the word "pod".
    assert "pod" not in lexical_tokens("iPod") and "~pod" in lexical_tokens("iPod")


def test_trigrams_match_what_shops_spell_differently() -> None:
    left, right = (tfidf_weights(lexical_tokens(text), None) for text in ("Photoshop CS3", "Photoshp CS3"))
    words_left, words_right = (tfidf_weights(word_bag(text), None) for text in ("Photoshop CS3", "Photoshp CS3"))
    assert cosine(words_left, words_right) == pytest.approx(0.5)  # only "cs3" is shared as a word
    assert cosine(left, right) > 0.7


def test_document_frequencies_count_documents_not_occurrences() -> None:
    frequencies = DocumentFrequencies.of([["sony", "sony", "tv"], ["sony", "radio"]])
    assert frequencies.documents == 2
    assert frequencies.count("sony") == 2
    assert frequencies.count("tv") == 1
    assert frequencies.idf("tv") > frequencies.idf("sony") > 0
    assert frequencies.idf("unseen") > frequencies.idf("tv")


@given(st.lists(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=5), min_size=1, max_size=8))
def test_remove_undoes_add(documents: list[list[str]]) -> None:
    frequencies = DocumentFrequencies.of(documents[:-1])
    before = {token: frequencies.count(token) for token in "abcd"}
    frequencies.add(documents[-1])
    frequencies.remove(documents[-1])
    assert {token: frequencies.count(token) for token in "abcd"} == before
    assert frequencies.documents == len(documents) - 1


def test_remove_of_tokens_never_added_raises() -> None:
    frequencies = DocumentFrequencies.of([["a"]])
    with pytest.raises(ValueError, match="never added"):
        frequencies.remove(["b"])


def test_tfidf_weights_are_unit_vectors() -> None:
    frequencies = DocumentFrequencies.of([["a", "b"], ["a"]])
    for weights in (tfidf_weights(["a", "b", "b"], frequencies), tfidf_weights(["a", "b"], None)):
        assert math.isclose(math.sqrt(sum(w * w for w in weights.values())), 1.0)
    assert tfidf_weights([], None) == {}
    rare_weighted = tfidf_weights(["a", "b"], frequencies)
    assert rare_weighted["b"] > rare_weighted["a"]  # "b" is in fewer documents


def test_cosine_of_sparse_vectors() -> None:
    left = tfidf_weights(["a", "b"], None)
    assert math.isclose(cosine(left, left), 1.0)
    assert cosine(left, tfidf_weights(["c"], None)) == 0.0
    assert math.isclose(cosine(left, tfidf_weights(["a"], None)), 1 / math.sqrt(2))


def test_tfidf_matrix_agrees_with_the_sparse_form() -> None:
    documents = [["sony", "tv", "kdl40"], ["sony", "radio"], ["lg", "tv", "kdl40"]]
    matrix = TfidfMatrix(documents)
    similarities = matrix.similarities()
    assert similarities.shape == (3, 3)
    np.testing.assert_allclose(np.diag(similarities), 1.0, rtol=1e-6)
    expected = cosine(tfidf_weights(documents[0], matrix.frequencies), tfidf_weights(documents[2], matrix.frequencies))
    assert similarities[0, 2] == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(matrix.similarities([2]), similarities[[2]], rtol=1e-6)
