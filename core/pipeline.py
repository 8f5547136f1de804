"""One micro-batch of product events -> Redis state and the similar-item lists to emit.

The stages of design.md §1 in order: newest version per key, version fence against Redis, the
embedded text and its hash (skip the encoder when unchanged), encode, fenced writes, lists.
Emission and offset commits belong to the caller (consumers/): the lists computed here are only
made current in Redis (:meth:`Pipeline.commit`) after the caller's producer delivered them, so a
crash in between makes a replay re-emit them instead of losing them.

The replay rule, one for both delivery modes. A replayed event (its version equals the stored one)
cannot tell whether the output of its first run reached readers: at-least-once flushed it before
Redis, but an exactly-once transaction commits *after* Redis and may have aborted. So:

- a replayed upsert is always relisted (its own list recomputed and emitted again);
- a replayed delete of a product that is gone is always tombstoned again;
- a batch holding any replay emits every list it recomputes, even one equal to Redis: the run that
  made it current may have had its records aborted.

At-least-once sees duplicates on replay (allowed there); exactly-once sees the re-run's records only.
Known gap: the lists that dropped a deleted product are found through ``rev:{id}``, which the first run
already emptied; if that run's transaction aborted, those lists are right in Redis but their refreshed
records only reach the topic with their next change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from simstream.core.encoder import Encoder
from simstream.core.list_store import ListProposal, ListStore, ListWrite, StoredList, pool_of
from simstream.core.refresh import affected_products
from simstream.core.similarity import SimilarityPolicy, compute_stamped_lists, lists_equal
from simstream.core.text import build_text, compile_template, content_hash
from simstream.core.vector_store import ProductWrite, StoredState, UpsertResult, VectorStore
from simstream.schemas.events import ProductEvent

# Rounds of recomputing lists that named a product deleted meanwhile (a concurrent delete is rare; its
# own refresh covers what is left).
LIST_ATTEMPTS = 3


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
    encode_seconds: float = 0.0  # time inside the encoder: the worker's Redis time is process time minus this


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._encoder = encoder
        self._store = store
        self._lists = lists
        self._policy = policy
        self._refresh = refresh or RefreshPolicy()
        compile_template(text_template)  # a bad template fails at start-up, not on the first event
        self._template = text_template
        self._clock = clock

    def prepare(self, event: ProductEvent, event_time: float) -> Inbound:
        if event.product is None:
            return Inbound(event, None, 0, event_time)
        text = build_text(event.product, self._template)
        return Inbound(event, text, self._encoder.token_counts([text])[0], event_time)

    def process(self, batch: Sequence[Inbound]) -> BatchResult:
        result = BatchResult()
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

        writes = self._embed(writes_needed, states, result)
        outcomes = self._store.upsert_results(writes)
        # The server re-checks metadata-only writes: if the stored content moved meanwhile, embed after all.
        redo = [i for i, outcome in enumerate(outcomes) if outcome is UpsertResult.NEEDS_EMBEDDING]
        if redo:
            retry = self._embed([writes_needed[i] for i in redo], {}, result)
            result.metadata_only -= len(redo)
            for i, write, outcome in zip(redo, retry, self._store.upsert_results(retry), strict=True):
                writes[i], outcomes[i] = write, outcome
        applied = [w for w, o in zip(writes, outcomes, strict=True) if o is UpsertResult.APPLIED]
        changed = [w.product_id for w in applied]
        # Only a new vector can move the product into or out of other lists; a replay may have lost that work.
        moved = [w.product_id for w in applied if w.embedding is not None] + relist
        result.stale += len(writes) - len(changed)
        deleted_ok = self._store.delete(deletes)
        gone = [pid for (pid, _), ok in zip(deletes, deleted_ok, strict=True) if ok] + retombstone
        result.stale += deleted_ok.count(False)
        result.deleted = len(gone)

        own = changed + relist  # products whose own version moved: their list is always emitted
        replayed = bool(relist or retombstone)
        result.lists, result.recomputed = self._refresh_lists(own, moved, gone, emit_all=replayed)
        result.touched = result.recomputed
        result.tombstones = gone
        result.event_times = {pid: newest[pid].received_at for pid in [*own, *gone]}
        return result

    def _refresh_lists(
        self, own: list[str], moved: list[str], gone: list[str], *, emit_all: bool
    ) -> tuple[list[StoredList], int]:
        """Recompute every list the batch can alter (one KNN per product); keep those to emit.

        A list is emitted when it changed (all of them with ``emit_all``: a replay's earlier records may
        never have become visible), unless a fresher list of the same product is current or in flight
        (another worker refreshed it meanwhile). A list that names a product deleted since it was
        computed is recomputed.
        """
        targets = set(own)
        if self._refresh.enabled:
            targets |= affected_products(
                self._store, self._lists, moved, gone, self._policy, fanout=self._refresh.fanout
            )
        own_set = set(own)
        model = self._encoder.model_id
        ready: dict[str, StoredList] = {}
        recomputed = 0
        pending = sorted(targets)
        for _ in range(LIST_ATTEMPTS):
            if not pending:
                break
            computed = compute_stamped_lists(self._store, pending, self._policy)
            recomputed += len(computed.lists)
            current = self._lists.read_lists(list(computed.lists), with_pools=True)
            proposals: dict[str, ListProposal] = {}
            for pid, fresh in computed.lists.items():
                stored = current.get(pid)
                unchanged = (
                    pid not in own_set
                    and stored is not None
                    and stored.source_version == fresh.source_version
                    and stored.model == model
                    and set(pool_of(stored)) == set(fresh.pool)
                    and lists_equal(stored.items, fresh.items, self._refresh.epsilon)
                )
                proposals[pid] = ListProposal(
                    ListWrite(fresh.items, fresh.source_version, model, fresh.pool, fresh.admission),
                    computed.stamp,
                    compared_with=None if stored is None else stored.list_version,
                    unchanged=unchanged,
                    forced=emit_all,
                )
            prepared = self._lists.prepare(proposals)
            ready.update(prepared.ready)
            pending = prepared.gone
        return list(ready.values()), recomputed

    def commit(self, result: BatchResult) -> None:
        """Make the delivered lists current in Redis (``similar:``, ``rev:``); drop deleted ones."""
        self._lists.commit(result.lists)
        for product_id in result.tombstones:
            self._lists.delete_list(product_id)

    def _embed(
        self, items: Sequence[Inbound], states: dict[str, StoredState | None], result: BatchResult
    ) -> list[ProductWrite]:
        model_id = self._encoder.model_id
        hashes = [content_hash(item.text or "", model_id) for item in items]
        to_encode = [
            i
            for i, (item, digest) in enumerate(zip(items, hashes, strict=True))
            if not _same_content(states.get(item.event.product_id), digest)
        ]
        started = time.perf_counter()
        vectors = self._encoder.encode([items[i].text or "" for i in to_encode]) if to_encode else None
        result.encode_seconds += time.perf_counter() - started
        row_of = {index: row for row, index in enumerate(to_encode)}
        result.encoded += len(to_encode)
        result.metadata_only += len(items) - len(to_encode)
        now = self._clock()
        writes: list[ProductWrite] = []
        for index, (item, digest) in enumerate(zip(items, hashes, strict=True)):
            product = item.event.product
            assert product is not None  # deletes never reach _embed
            row = row_of.get(index)
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
                    embedding=None if row is None or vectors is None else vectors[row],
                    text=item.text or "",
                )
            )
        return writes


def _same_content(state: StoredState | None, digest: str) -> bool:
    return state is not None and state.exists and state.content_hash == digest


def newest_per_product(batch: Iterable[Inbound]) -> dict[str, Inbound]:
    """Keep the highest version per product; on equal versions the later record wins."""
    newest: dict[str, Inbound] = {}
    for item in batch:
        current = newest.get(item.event.product_id)
        if current is None or item.event.version >= current.event.version:
            newest[item.event.product_id] = item
    return newest
