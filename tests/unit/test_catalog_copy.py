"""CatalogWriter (core/catalog_copy): fenced writes into one generation, vectors only for new texts.

The store here is a small in-memory one with the product store's fence rules (the Lua scripts are
tested on the real Redis in tests/integration/test_model_upgrade.py and test_vector_store.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from simstream.core.catalog_copy import CatalogRecord, CatalogWriter
from simstream.core.vector_store import ProductWrite, StoredState, UpsertResult


class CountingEncoder:
    model_id = "shadow@1"
    dim = 4

    def __init__(self) -> None:
        self.texts: list[str] = []

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.texts.extend(texts)
        return np.ones((len(texts), self.dim), dtype=np.float32) / 2


class FencedStore:
    """Fences as the product store's scripts keep them: a write applies above every version seen."""

    def __init__(self) -> None:
        self.fences: dict[str, int] = {}
        self.rows: dict[str, ProductWrite] = {}

    def states(self, ids: Sequence[str]) -> dict[str, StoredState | None]:
        found: dict[str, StoredState | None] = {}
        for pid in ids:
            row = self.rows.get(pid)
            found[pid] = (
                None
                if pid not in self.fences
                else StoredState(self.fences[pid], None if row is None else row.content_hash, row is not None)
            )
        return found

    def upsert_results(self, writes: Sequence[ProductWrite]) -> list[UpsertResult]:
        results = []
        for write in writes:
            if write.version <= self.fences.get(write.product_id, -1):
                results.append(UpsertResult.STALE)
                continue
            row = self.rows.get(write.product_id)
            if write.embedding is None and (row is None or row.content_hash != write.content_hash):
                results.append(UpsertResult.NEEDS_EMBEDDING)
                continue
            embedding = write.embedding if write.embedding is not None else row.embedding  # type: ignore[union-attr]
            self.rows[write.product_id] = ProductWrite(**{**_fields(write), "embedding": embedding})
            self.fences[write.product_id] = write.version
            results.append(UpsertResult.APPLIED)
        return results

    def delete(self, items: Sequence[tuple[str, int]]) -> list[bool]:
        applied = []
        for pid, version in items:
            ok = version > self.fences.get(pid, -1)
            if ok:
                self.fences[pid] = version
                self.rows.pop(pid, None)
            applied.append(ok)
        return applied


def _fields(write: ProductWrite) -> dict[str, object]:
    return {name: getattr(write, name) for name in ProductWrite.__dataclass_fields__}


def record(pid: str, version: int, text: str | None = "sony tv", price: float | None = 10.0) -> CatalogRecord:
    return CatalogRecord(pid, version, text, "title " + pid, "brand", "tv", price)


def test_new_products_are_encoded_once_and_written_with_the_shadow_model() -> None:
    encoder, store = CountingEncoder(), FencedStore()
    counts = CatalogWriter(encoder, store).write([record("a", 1), record("b", 1, "bose speaker")])  # type: ignore[arg-type]
    assert (counts.written, counts.encoded, counts.current) == (2, 2, 0)
    assert encoder.texts == ["sony tv", "bose speaker"]
    assert {row.model for row in store.rows.values()} == {"shadow@1"}


def test_what_the_shadow_holds_at_that_version_or_later_is_neither_encoded_nor_written() -> None:
    encoder, store = CountingEncoder(), FencedStore()
    writer = CatalogWriter(encoder, store)  # type: ignore[arg-type]
    writer.write([record("a", 5), record("b", 1)])
    encoder.texts.clear()
    counts = writer.write([record("a", 5), record("a", 4), record("b", 1)])  # a resumed backfill, an older copy
    assert (counts.written, counts.encoded, counts.current) == (0, 0, 3)
    assert encoder.texts == [] and store.fences == {"a": 5, "b": 1}


def test_a_new_version_with_the_same_text_keeps_the_vector_and_a_new_text_is_encoded() -> None:
    encoder, store = CountingEncoder(), FencedStore()
    writer = CatalogWriter(encoder, store)  # type: ignore[arg-type]
    writer.write([record("a", 1), record("b", 1)])
    encoder.texts.clear()
    counts = writer.write([record("a", 2, price=12.0), record("b", 2, "bose tv")])
    assert (counts.written, counts.encoded) == (2, 1) and encoder.texts == ["bose tv"]
    assert store.rows["a"].price == 12.0 and store.fences == {"a": 2, "b": 2}


def test_deletes_are_fenced_and_an_older_copy_never_comes_back() -> None:
    encoder, store = CountingEncoder(), FencedStore()
    writer = CatalogWriter(encoder, store)  # type: ignore[arg-type]
    writer.write([record("a", 1)])
    counts = writer.write([CatalogRecord("a", 3, None), CatalogRecord("ghost", 2, None)])
    assert counts.deleted == 2 and "a" not in store.rows
    late = writer.write([record("a", 2)])  # the backfill read version 2 before the delete
    assert late.written == 0 and late.current == 1 and "a" not in store.rows
