"""Product changes written into one model generation with its own encoder (core/generations).

The worker's batches write each change into the shadow generation too, and a backfill copies what the
live generation already holds; both go through :class:`CatalogWriter`, so both obey the shadow's own
version fences: a change applies only above every version the shadow saw, whichever writer comes
first. A text the shadow already holds under its model is not encoded again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simstream.core.encoder import Encoder
from simstream.core.text import content_hash
from simstream.core.vector_store import ProductWrite, StoredState, UpsertResult, Vector, VectorStore
from simstream.core.vector_types import holds_content


@dataclass(frozen=True, slots=True)
class CatalogRecord:
    """A product at a version (``text`` None: deleted at that version)."""

    product_id: str
    version: int
    text: str | None
    title: str = ""
    brand: str = ""
    category: str = ""
    price: float | None = None


@dataclass(slots=True)
class CopyCounts:
    written: int = 0  # upserts applied
    encoded: int = 0  # of which with a new vector
    deleted: int = 0
    current: int = 0  # already at (or past) the record's version: nothing to do
    encode_seconds: float = 0.0

    def add(self, other: CopyCounts) -> None:
        self.written += other.written
        self.encoded += other.encoded
        self.deleted += other.deleted
        self.current += other.current
        self.encode_seconds += other.encode_seconds


class CatalogWriter:
    """Version-fenced writes of records into one generation's product hashes, with its encoder."""

    def __init__(self, encoder: Encoder, store: VectorStore, clock: Callable[[], float] = time.time) -> None:
        self.encoder = encoder
        self.store = store
        self._clock = clock

    @property
    def model_id(self) -> str:
        return self.encoder.model_id

    def write(self, records: Sequence[CatalogRecord]) -> CopyCounts:
        counts = CopyCounts()
        if not records:
            return counts
        states = self.store.states([record.product_id for record in records])
        upserts: list[CatalogRecord] = []
        deletes: list[tuple[str, int]] = []
        for record in records:
            state = states.get(record.product_id)
            if state is not None and record.version <= state.version:
                counts.current += 1
            elif record.text is None:
                deletes.append((record.product_id, record.version))
            else:
                upserts.append(record)
        writes = self._writes(upserts, states, counts)
        outcomes = self.store.upsert_results(writes)
        # The server re-checks metadata-only writes: if the stored text moved meanwhile, embed after all.
        redo = [i for i, outcome in enumerate(outcomes) if outcome is UpsertResult.NEEDS_EMBEDDING]
        if redo:
            retried = self._writes([upserts[i] for i in redo], {}, counts)
            for i, outcome in zip(redo, self.store.upsert_results(retried), strict=True):
                outcomes[i] = outcome
        counts.written = sum(outcome is UpsertResult.APPLIED for outcome in outcomes)
        counts.current += len(outcomes) - counts.written
        applied_deletes = self.store.delete(deletes)
        counts.deleted = sum(applied_deletes)
        counts.current += len(deletes) - counts.deleted
        return counts

    def _writes(
        self, records: Sequence[CatalogRecord], states: dict[str, StoredState | None], counts: CopyCounts
    ) -> list[ProductWrite]:
        model_id = self.encoder.model_id
        hashes = [content_hash(record.text or "", model_id) for record in records]
        needed = [
            i
            for i, (record, digest) in enumerate(zip(records, hashes, strict=True))
            if not holds_content(states.get(record.product_id), digest)
        ]
        vector_of: dict[int, Vector] = {}
        if needed:
            started = time.perf_counter()
            vectors = self.encoder.encode([records[i].text or "" for i in needed])
            counts.encode_seconds += time.perf_counter() - started
            vector_of = dict(zip(needed, vectors, strict=True))
        counts.encoded += len(needed)
        now = self._clock()
        return [
            ProductWrite(
                product_id=record.product_id,
                version=record.version,
                content_hash=digest,
                model=model_id,
                title=record.title,
                brand=record.brand,
                category=record.category,
                price=record.price,
                updated_at=now,
                embedding=vector_of.get(i),
                text=record.text or "",
            )
            for i, (record, digest) in enumerate(zip(records, hashes, strict=True))
        ]
