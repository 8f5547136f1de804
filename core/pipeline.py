"""One micro-batch of product events -> Redis state and the similar-item lists to emit.

The stages of design.md §1 in order: newest version per key, version fence against Redis, the
embedded text and its hash (skip the encoder when unchanged), encode, fenced writes, lists.
Emission and offset commits belong to the caller (consumers/checkpoint.py): the lists computed here
are only made current in Redis (:meth:`Pipeline.commit`) after the caller's producer delivered them,
so a crash in between makes a replay re-emit them instead of losing them.

The encoder work of a batch can be done ahead (:meth:`Pipeline.prefetch`, on another thread while the
batch before is applied). It is only a cache of vectors by content hash: :meth:`Pipeline.process`
re-reads the stored states as always and encodes whatever the cache misses, so the version fence and
the replay rule below do not depend on it.

The replay rule, one for both delivery modes. A replayed event (its version equals the stored one)
cannot tell whether the output of its first run reached readers: at-least-once flushed it before
Redis, but an exactly-once transaction commits *after* Redis and may have aborted. So:

- a replayed upsert is always relisted (its own list recomputed and emitted again);
- a replayed delete of a product that is gone is always tombstoned again;
- a replay outranked in its batch by a newer version of the same product (a restarted worker reads
  both at once) still counts: the newer write, even a metadata-only one, redoes the reverse list work
  (the pools the replayed vector entered may be prepared but not current, or current but unemitted);
- a batch holding any replay emits every list it recomputes, even one equal to Redis: the run that
  made it current may have had its records aborted.

At-least-once sees duplicates on replay (allowed there); exactly-once sees the re-run's records only.
The lists that dropped a deleted product are found through ``rev:{id}``, which the first run emptied:
its PREPARE round trip also kept them in ``dropped:{id}`` (core/list_store), which the list work reads
for every deleted or changed product (a replayed delete may be outranked by a re-create).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from simstream.core.bulk_lists import BulkReport, Emitter, build_all_lists
from simstream.core.catalog_copy import CatalogRecord, CatalogWriter
from simstream.core.encoder import Encoder
from simstream.core.first_load import FirstLoad
from simstream.core.generations import GenerationWatch
from simstream.core.list_store import ListStore, StoredList
from simstream.core.pool_refresh import Owner, PoolRefresher, ScoringMoved
from simstream.core.redis_client import redis_errors
from simstream.core.redis_replies import text
from simstream.core.similarity import SimilarityPolicy
from simstream.core.terms import TermsStore
from simstream.core.text import build_text, compile_template, content_hash
from simstream.core.vector_store import ProductWrite, StoredState, UpsertResult, Vector, VectorStore
from simstream.core.vector_types import holds_content
from simstream.schemas.events import ProductEvent


@dataclass(frozen=True, slots=True)
class Inbound:
    """A decoded event with what the batcher needs: its embedded text and token count."""

    event: ProductEvent
    text: str | None  # None for deletes
    tokens: int
    received_at: float  # event time in epoch seconds (the Kafka record timestamp), for freshness


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """Reverse-neighbour refresh: off means only the changed product's own list is recomputed."""

    enabled: bool = True
    fanout: int = 50  # neighbours of a changed product whose lists it may enter
    epsilon: float = 1e-4  # a list whose scores all moved less than this is not emitted again


@dataclass(slots=True)
class BatchResult:
    """What one batch produced: lists to emit, tombstones to emit, and counters for metrics."""

    lists: list[StoredList] = field(default_factory=list)
    tombstones: list[str] = field(default_factory=list)
    event_times: dict[str, float] = field(default_factory=dict)  # product_id -> event time, for freshness
    stale: int = 0
    encoded: int = 0
    metadata_only: int = 0
    deleted: int = 0
    recomputed: int = 0  # lists recomputed from a search (one KNN each); ``lists`` holds those that changed
    touched: int = 0  # lists the batch examined: updated from its scores or recomputed
    round_trips: int = 0  # Redis round trips of the list work
    deferred: bool = False  # a first load: products written, the lists left to the bulk pass
    shadow_encoded: int = 0  # texts encoded for the shadow model generation (core/generations)
    shadow_seconds: float = 0.0  # time inside the shadow model's encoder
    encode_seconds: float = 0.0  # time inside the encoder, the prefetch's included
    encode_ahead_seconds: float = 0.0  # the prefetch's part: spent before process(), not inside it


@dataclass(frozen=True, slots=True)
class Prefetched:
    """Vectors encoded ahead of a batch, by content hash: a cache for :meth:`Pipeline.process`."""

    vectors: Mapping[str, Vector]
    encode_seconds: float = 0.0


class Pipeline:
    def __init__(
        self,
        encoder: Encoder,
        store: VectorStore,
        lists: ListStore,
        policy: SimilarityPolicy,
        *,
        text_template: str,
        refresh: RefreshPolicy | None = None,
        first_load: FirstLoad | None = None,
        terms: TermsStore | None = None,
        shadow: CatalogWriter | None = None,
        generations: GenerationWatch | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._encoder = encoder
        # An upgrade in progress (core/generations): every change is written into the shadow model's
        # product hashes too, before the live ones; ``generations`` is the value this pipeline is for.
        self._shadow = shadow
        self._generations = generations
        self._store = store
        self._lists = lists
        self._policy = policy
        self._refresh = refresh or RefreshPolicy()
        compile_template(text_template)  # a bad template fails at start-up, not on the first event
        self._template = text_template
        self._clock = clock
        self._first_load = first_load
        self._terms = terms
        self._device = str(getattr(encoder, "device", "cpu"))
        # The prefetch thread and process() (for the prefetch's misses) may both need the encoder: one
        # at a time (its tokenizer is not safe to share between threads; token_counts has its own).
        self._encoder_lock = threading.Lock()
        self._refresher = PoolRefresher(
            lists.client,
            lists,
            policy,
            index_name=store.index_name,
            model=encoder.model_id,
            fanout=self._refresh.fanout,
            epsilon=self._refresh.epsilon,
            device=self._device,
            generations=generations,
        )
        self._sync_terms()

    def _sync_terms(self) -> None:
        """Score with the term-statistics snapshot Redis names now (core/terms)."""
        if self._terms is None:
            return
        current = self._terms.current()
        if current is not self._policy.terms:
            self._policy = replace(self._policy, terms=current)
            self._refresher.use_policy(self._policy)

    @property
    def policy(self) -> SimilarityPolicy:
        return self._policy

    def prepare(self, event: ProductEvent, event_time: float) -> Inbound:
        if event.product is None:
            return Inbound(event, None, 0, event_time)
        text = build_text(event.product, self._template)
        tokens = self._encoder.token_counts([text])[0]  # never waits for an encode ahead (core/encoder)
        return Inbound(event, text, tokens, event_time)

    def prefetch(self, batch: Sequence[Inbound]) -> Prefetched:
        """Encode ahead the texts :meth:`process` will need for ``batch``, as far as Redis tells now:
        upserts newer than the stored version whose content hash differs from the stored one. Safe on
        another thread than :meth:`process`; the result only saves it encoder work."""
        model_id = self._encoder.model_id
        upserts = [item for item in newest_per_product(batch).values() if not item.event.is_delete]
        states = self._store.states([item.event.product_id for item in upserts])
        texts: dict[str, str] = {}  # content hash -> text: equal texts are encoded once
        for item in upserts:
            state = states.get(item.event.product_id)
            if state is not None and item.event.version <= state.version:
                continue  # stale, or a replay: process() encodes nothing for it
            digest = content_hash(item.text or "", model_id)
            if not holds_content(state, digest):
                texts.setdefault(digest, item.text or "")
        vectors, seconds = self._encode(list(texts.values()))
        return Prefetched(MappingProxyType(dict(zip(texts, vectors, strict=True))), seconds)

    def process(
        self,
        batch: Sequence[Inbound],
        prefetched: Prefetched | None = None,
        *,
        list_work: bool = True,
        between: Callable[[], None] | None = None,
    ) -> BatchResult:
        """The batch applied to Redis and its lists prepared (not yet current); ``prefetched``: vectors
        encoded ahead (:meth:`prefetch`, possibly of a larger or older batch), used where the content
        hash matches. ``between``: called between the round trips of the list work (the worker polls
        there, so that what arrives meanwhile is encoded ahead while this batch's lists are computed).

        ``list_work`` False, or while a first load is pending (core/first_load): products are written
        and deleted, tombstones returned, and no list is computed (core/bulk_lists builds them later).
        """
        result = BatchResult()
        result.deferred = not list_work or (self._first_load is not None and self._first_load.pending() is not None)
        cached: Mapping[str, Vector] = {}
        if prefetched is not None:
            cached = prefetched.vectors
            result.encode_seconds = result.encode_ahead_seconds = prefetched.encode_seconds
        newest = newest_per_product(batch)
        result.stale = len(batch) - len(newest)
        states = self._store.states(list(newest))
        stored_lists = {pid: s.source_version for pid, s in self._lists.read_lists(list(newest)).items()}

        writes_needed: list[Inbound] = []
        deletes: list[tuple[str, int]] = []
        relist: list[str] = []  # already stored at this version, but its list was never made current
        retombstone: list[str] = []
        for product_id, item in newest.items():
            state = states.get(product_id)
            version = item.event.version
            if state is not None and version < state.version:
                result.stale += 1
            elif state is not None and version == state.version:
                # A replay of what Redis already holds: only finish the list work it may have lost.
                # The first run's records may have been aborted (exactly-once): redo its output.
                listed = stored_lists.get(product_id)
                if item.event.is_delete and not state.exists:
                    retombstone.append(product_id)
                elif not item.event.is_delete and state.exists and (listed is None or listed <= version):
                    relist.append(product_id)
                else:
                    result.stale += 1
            elif item.event.is_delete:
                deletes.append((product_id, version))
            else:
                writes_needed.append(item)

        # Replays that a newer version of the same product outranks in this batch: the newer version may
        # move no vector (a metadata-only update), so only the replay tells that the first run's list work
        # (the pools its vector entered, their records) may be lost. Redone as for a replay (below).
        superseded = replays_superseded(batch, newest, states)

        self._write_shadow(newest, states, result)
        writes = self._embed(writes_needed, states, result, cached)
        outcomes = self._store.upsert_results(writes)
        # The server re-checks metadata-only writes: if the stored content moved meanwhile, embed after all.
        redo = [i for i, outcome in enumerate(outcomes) if outcome is UpsertResult.NEEDS_EMBEDDING]
        if redo:
            retry = self._embed([writes_needed[i] for i in redo], {}, result, cached)
            result.metadata_only -= len(redo)
            for i, write, outcome in zip(redo, retry, self._store.upsert_results(retry), strict=True):
                writes[i], outcomes[i] = write, outcome
        applied = [w for w, o in zip(writes, outcomes, strict=True) if o is UpsertResult.APPLIED]
        changed = [w.product_id for w in applied]
        result.stale += len(writes) - len(changed)
        deleted_ok = self._store.delete(deletes)
        gone = [pid for (pid, _), ok in zip(deletes, deleted_ok, strict=True) if ok] + retombstone
        result.stale += deleted_ok.count(False)
        result.deleted = len(gone)
        self._check_generations()

        result.tombstones = gone
        own = changed + relist  # products whose own version moved: their list is always emitted
        result.event_times = {pid: newest[pid].received_at for pid in [*own, *gone]}
        if result.deferred:
            self._sync_terms()  # a snapshot switch defers lists too: be current when they resume
            if self._first_load is not None and (changed or gone):
                self._first_load.note_writes()
            return result
        replayed = bool(relist or retombstone or superseded)
        # Only a new vector can move a product into or out of other lists; a replay may have lost that work.
        owners = {w.product_id: _owner(w) for w in applied if w.embedding is not None}
        lost_work = [pid for pid in changed if pid in superseded and pid not in owners]
        owners.update(self._refresher.read_owners([*relist, *lost_work]))
        own_only = [pid for pid in own if pid not in owners]
        try:
            refreshed = self._refresher.refresh(
                owners, gone, own_only=own_only, reverse=self._refresh.enabled, emit_all=replayed, between=between
            )
        except ScoringMoved:
            # Pools may now hold scores of the old snapshot or model: have the bulk pass (again) recompute
            # them all (the worker loads a new live model before its next batch).
            self._sync_terms()
            result.deferred = True
            if self._first_load is not None:
                self._first_load.note_writes()
            return result
        result.lists = refreshed.lists
        result.recomputed = refreshed.counts.searched
        result.touched = refreshed.counts.touched + len(owners)
        result.round_trips = refreshed.counts.round_trips
        return result

    def _write_shadow(
        self, newest: Mapping[str, Inbound], states: dict[str, StoredState | None], result: BatchResult
    ) -> None:
        """Every change that is not stale for the live generation, written into the shadow one first: a
        crash between the two leaves the shadow ahead, never behind (a replay writes the live one)."""
        if self._shadow is None:
            return
        records = []
        for product_id, item in newest.items():
            state = states.get(product_id)
            if state is not None and item.event.version < state.version:
                continue
            product, version = item.event.product, item.event.version
            if product is None:
                records.append(CatalogRecord(product_id, version, None))
                continue
            brand, category = product.brand or "", product.category or ""
            records.append(
                CatalogRecord(product_id, version, item.text or "", product.title, brand, category, product.price)
            )
        with self._encoder_lock:  # the shadow encoder shares the cores with the live one
            counts = self._shadow.write(records)
        result.shadow_encoded += counts.encoded
        result.shadow_seconds += counts.encode_seconds

    def _check_generations(self) -> None:
        """After the batch's writes: the generations are still the ones it wrote for. A register that
        came earlier means the shadow missed these writes; the batch is then run again for the new
        generations (the live writes replay as no-ops, the shadow gets them). If the value did not move,
        every write of the batch ran before any change of it."""
        if self._generations is None:
            return
        client = self._lists.client
        with redis_errors("read the model generations"):
            found = client.get(self._generations.key)
        self._generations.check(None if found is None else text(found))

    @property
    def generations(self) -> GenerationWatch | None:
        return self._generations

    @property
    def first_load(self) -> FirstLoad | None:
        return self._first_load

    def build_all_lists(self, emit: Emitter | None) -> BulkReport:
        """Every product's pool and list built in bulk (core/bulk_lists), emitted, made current."""
        report = build_all_lists(
            self._store, self._lists, self._policy, self._encoder.model_id, device=self._device, emit=emit,
            epsilon=self._refresh.epsilon, terms=self._terms,
        )  # fmt: skip
        self._sync_terms()
        return report

    def finish_first_load(self, seen: int, emit: Emitter | None) -> BulkReport:
        """A pending first load's lists, all built in bulk, emitted and made current; the marker is
        removed unless a batch wrote since ``seen`` (its counter, read before this call) was read."""
        assert self._first_load is not None
        report = self.build_all_lists(emit)
        report.finished = self._first_load.finish(seen, self._generations)
        return report

    def commit(self, result: BatchResult) -> None:
        """Make the delivered lists current in Redis (``similar:``); drop deleted ones."""
        self._lists.commit(result.lists)
        for product_id in result.tombstones:
            self._lists.delete_list(product_id)

    def _encode(self, texts: Sequence[str]) -> tuple[Sequence[Vector], float]:
        """The texts' vectors and the seconds spent in the encoder (none for no texts)."""
        if not texts:
            return [], 0.0
        with self._encoder_lock:
            started = time.perf_counter()
            vectors = self._encoder.encode(texts)
            return list(vectors), time.perf_counter() - started

    def _embed(
        self,
        items: Sequence[Inbound],
        states: dict[str, StoredState | None],
        result: BatchResult,
        cached: Mapping[str, Vector],
    ) -> list[ProductWrite]:
        model_id = self._encoder.model_id
        hashes = [content_hash(item.text or "", model_id) for item in items]
        needed = [
            i
            for i, (item, digest) in enumerate(zip(items, hashes, strict=True))
            if not holds_content(states.get(item.event.product_id), digest)
        ]
        to_encode = [i for i in needed if hashes[i] not in cached]
        encoded, seconds = self._encode([items[i].text or "" for i in to_encode])
        result.encode_seconds += seconds
        fresh = dict(zip(to_encode, encoded, strict=True))
        vector_of = {i: fresh[i] if i in fresh else cached[hashes[i]] for i in needed}
        result.encoded += len(needed)
        result.metadata_only += len(items) - len(needed)
        now = self._clock()
        writes: list[ProductWrite] = []
        for index, (item, digest) in enumerate(zip(items, hashes, strict=True)):
            product = item.event.product
            assert product is not None  # deletes never reach _embed
            writes.append(
                ProductWrite(
                    product_id=item.event.product_id,
                    version=item.event.version,
                    content_hash=digest,
                    model=model_id,
                    title=product.title,
                    brand=product.brand or "",
                    category=product.category or "",
                    price=product.price,
                    updated_at=now,
                    embedding=vector_of.get(index),
                    text=item.text or "",
                )
            )
        return writes


def _owner(write: ProductWrite) -> Owner:
    assert write.embedding is not None
    return Owner(write.embedding, write.version, write.text, write.category)


def replays_superseded(
    batch: Iterable[Inbound], newest: Mapping[str, Inbound], states: Mapping[str, StoredState | None]
) -> set[str]:
    """Products with an event at the version Redis holds (a replay) and a newer one in the same batch."""
    found: set[str] = set()
    for item in batch:
        product_id, version = item.event.product_id, item.event.version
        state = states.get(product_id)
        if state is not None and version == state.version < newest[product_id].event.version:
            found.add(product_id)
    return found


def newest_per_product(batch: Iterable[Inbound]) -> dict[str, Inbound]:
    """Keep the highest version per product; on equal versions the later record wins."""
    newest: dict[str, Inbound] = {}
    for item in batch:
        current = newest.get(item.event.product_id)
        if current is None or item.event.version >= current.event.version:
            newest[item.event.product_id] = item
    return newest
