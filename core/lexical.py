"""Lexical evidence for product matching: word tokens, model codes, TF-IDF (numpy only).

Two offers of the same product are often told apart from their neighbours by one token only: the
model code ("PSLX350H", "LC-32D64U", "MB470LL/A"). Shops write codes with and without '-' and '/',
so codes are normalised by dropping those separators ("lc32d64u", "mb470lla"), and each part of a
separated code is a code of its own ("GS724TP-100NAS" also yields "gs724tp").

``DocumentFrequencies`` counts documents per token (a dict entry per distinct token; adding or
removing a document costs O(its tokens)); the pipeline scores with a frozen, versioned snapshot of
such counts (core/terms).
``TfidfMatrix`` is the batch form used by the evaluation: one dense float32 row per document.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from operator import mul
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

_WORD_RE: Final = re.compile(r"[^\W_]+")
# A run of letters/digits joined by '-' or '/': the shape model codes come in.
_CHUNK_RE: Final = re.compile(r"[^\W_]+(?:[-/][^\W_]+)*")
# Quantities with a unit ("1080p", "250gb", "42in") carry digits but name no model.
_QUANTITY_RE: Final = re.compile(r"\d+[a-z]{0,4}")
MIN_CODE_CHARS: Final = 4
MIN_DIGIT_ONLY_CODE_CHARS: Final = 5  # "14240" is a code, "2008" is a year


def word_tokens(text: str) -> list[str]:
    """Lower-cased runs of letters and digits, in order ("LC-32D64U" -> "lc", "32d64u")."""
    return _WORD_RE.findall(text.casefold())


def is_model_code(token: str) -> bool:
    """A normalised token that looks like a model number: letters and digits, or a long digit run."""
    if len(token) < MIN_CODE_CHARS or not any(char.isdigit() for char in token):
        return False
    if token.isdigit():
        return len(token) >= MIN_DIGIT_ONLY_CODE_CHARS
    return _QUANTITY_RE.fullmatch(token) is None


def model_codes(text: str) -> list[str]:
    """Normalised model codes of ``text``, first occurrence order, no duplicates.

    "Sony PS-LX350H" -> ["pslx350h"]; "GS724TP-100NAS" -> ["gs724tp100nas", "gs724tp"].
    """
    codes: dict[str, None] = {}
    for chunk in _CHUNK_RE.findall(text.casefold()):
        parts = re.split(r"[-/]", chunk)
        for candidate in ("".join(parts), *parts) if len(parts) > 1 else (chunk,):
            if is_model_code(candidate):
                codes.setdefault(candidate, None)
    return list(codes)


def code_stem(code: str) -> str | None:
    """The code without its trailing letters, which are mostly colour or region suffixes
    ("dle0442wh" and "dle0442w" -> "dle0442"); None when what is left is no longer a code."""
    stem = code.rstrip("abcdefghijklmnopqrstuvwxyz")
    return stem if stem != code and is_model_code(stem) else (code if stem == code else None)


def word_bag(text: str) -> list[str]:
    """The words plus the joined model codes (with repeats): the bag of the ``tfidf`` baseline."""
    return _with_codes(word_tokens(text), text)


def _with_codes(words: list[str], text: str) -> list[str]:
    return words + [code for code in model_codes(text) if code not in words]


def char_trigrams(word: str) -> list[str]:
    """The word's character trigrams, its boundaries marked ("tv" -> "#tv", "tv#")."""
    marked = f"#{word}#"
    return [marked[i : i + 3] for i in range(len(marked) - 2)]


def lexical_tokens(text: str) -> list[str]:
    """The bag of tokens the hybrid score sees: :func:`word_bag` plus every word's character trigrams.

    Trigrams match what shops spell differently ("photoshp", "wi-fi"/"wifi", "36in"/"36-inch") and
    were worth 0.7-2.6 points of cross-shop recall@1 on Abt-Buy (README, "What a similar-items list
    is"). They are prefixed with "~" so that no trigram counts as a word (the "pod" of "ipod" is not
    the word "pod").
    """
    words = word_tokens(text)
    return _with_codes(words, text) + [f"~{gram}" for word in words for gram in char_trigrams(word)]


class DocumentFrequencies:
    """How many documents hold each token: the IDF state, updated one document at a time.

    Memory is one dict entry per distinct token; ``add``/``remove`` cost O(tokens of the document).
    Scores computed with it drift slightly as the catalog changes; lists are not recomputed for that.
    """

    __slots__ = ("_counts", "_documents")

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._documents = 0

    @classmethod
    def of(cls, documents: Iterable[Iterable[str]]) -> DocumentFrequencies:
        frequencies = cls()
        for tokens in documents:
            frequencies.add(tokens)
        return frequencies

    @property
    def documents(self) -> int:
        return self._documents

    def add(self, tokens: Iterable[str]) -> None:
        self._counts.update(set(tokens))
        self._documents += 1

    def remove(self, tokens: Iterable[str]) -> None:
        """Undo an ``add`` of the same tokens (the caller keeps what it added, e.g. the stored text)."""
        distinct = set(tokens)
        if self._documents == 0 or any(self._counts[token] <= 0 for token in distinct):
            raise ValueError("remove() of tokens that were never added")
        self._counts.subtract(distinct)
        for token in distinct:
            if self._counts[token] == 0:
                del self._counts[token]
        self._documents -= 1

    def count(self, token: str) -> int:
        return self._counts.get(token, 0)

    def counts(self) -> dict[str, int]:
        """Every token's document count, sorted by token (a copy)."""
        return dict(sorted(self._counts.items()))

    def idf(self, token: str) -> float:
        return smoothed_idf(self._documents, self.count(token))


def smoothed_idf(documents: int, count: int) -> float:
    """ln((1 + N) / (1 + df)) + 1: never zero, highest for unseen tokens."""
    return math.log((1 + documents) / (1 + count)) + 1.0


class Idf(Protocol):
    """Inverse document frequencies: DocumentFrequencies, or a frozen snapshot (core/terms)."""

    def idf(self, token: str) -> float: ...


def tfidf_weights(tokens: Sequence[str], frequencies: Idf | None) -> dict[str, float]:
    """Sublinear TF times IDF, L2-normalised; without ``frequencies`` every token weighs the same."""
    counts = Counter(tokens)
    weights = {
        token: (1.0 + math.log(count)) * (frequencies.idf(token) if frequencies else 1.0)
        for token, count in counts.items()
    }
    norm = math.sqrt(sum(weight * weight for weight in weights.values()))
    return {token: weight / norm for token, weight in weights.items()} if norm else {}


def cosine(left: Mapping[str, float], right: Mapping[str, float]) -> float:
    """Dot product of two normalised sparse vectors.

    Summed over the shared tokens in ``left``'s order: the same float sum, bit for bit, as over all of
    its tokens (the others add exact zeros), at about half the cost; every batch scores thousands of pairs.
    """
    if len(left) > len(right):
        left, right = right, left
    shared = [token for token in left if token in right]
    return sum(map(mul, map(left.__getitem__, shared), map(right.__getitem__, shared)), 0.0)


class TfidfMatrix:
    """TF-IDF rows of a fixed corpus as a dense float32 matrix, for all-pairs scoring in evaluation.

    Memory is documents x vocabulary x 4 bytes (2,173 Abt-Buy offers: about 70 MB); the streaming path
    uses :func:`tfidf_weights` on one document at a time instead.
    """

    def __init__(self, documents: Sequence[Sequence[str]]) -> None:
        self.frequencies = DocumentFrequencies.of(documents)
        vocabulary: dict[str, int] = {}
        for tokens in documents:
            for token in tokens:
                vocabulary.setdefault(token, len(vocabulary))
        self.rows: npt.NDArray[np.float32] = np.zeros((len(documents), len(vocabulary)), dtype=np.float32)
        for row, tokens in enumerate(documents):
            for token, weight in tfidf_weights(tokens, self.frequencies).items():
                self.rows[row, vocabulary[token]] = weight

    def similarities(self, rows: Sequence[int] | None = None) -> npt.NDArray[np.float32]:
        """Cosine of the given rows (default: all) against every row: shape (len(rows), documents)."""
        queries = self.rows if rows is None else self.rows[np.asarray(rows, dtype=np.int64)]
        result: npt.NDArray[np.float32] = queries @ self.rows.T
        return result
