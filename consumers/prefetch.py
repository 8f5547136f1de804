"""Encode ahead what the worker polled and has not processed yet: on one thread, about a batch ahead.

Applying a batch is mostly Python and waiting on Redis and Kafka; encoding is mostly torch, which
releases the GIL. So while the worker's thread applies one batch, a background thread runs
:meth:`Pipeline.prefetch` for the events polled after it, in the order they were polled, a chunk at a
time. The worker polls between the round trips of a batch's list work as well (consumers/worker.py),
so at low load too the records that arrive while a batch is applied are encoded before it ends.

A prefetch is only a cache of vectors by content hash: when it fails, or the events it was for were
dropped (a revoked partition, a rewind), :meth:`Pipeline.process` encodes what is missing on the
worker's thread, where failures are retried or isolated as before. Bounded: a chunk starts only while
fewer than ``limit`` events are encoded ahead and not yet taken.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from simstream.core.pipeline import Inbound, Prefetched
from simstream.core.vector_store import Vector

log = logging.getLogger("simstream.worker")


class Encodes(Protocol):
    def prefetch(self, batch: Sequence[Inbound]) -> Prefetched: ...


@dataclass(slots=True)
class _Chunk:
    first: int  # the numbers of its first and last event (polled order)
    last: int
    future: Future[Prefetched]
    reported: bool = False  # its encoder time went out with a batch already


class Prefetcher:
    """Events are identified by object identity and numbered in the order :meth:`add` was given them;
    batches are taken in that order too (the batcher keeps it), so a chunk that ends at or before a
    taken batch's last event is never needed again."""

    def __init__(self, pipeline: Encodes, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self._pipeline = pipeline
        self._limit = limit
        self._executor: ThreadPoolExecutor | None = None  # started with the first chunk
        # id(event) -> its number and the event (held, so that its id is not reused meanwhile)
        self._numbers: dict[int, tuple[int, Inbound]] = {}
        self._next = 0
        self._taken = -1  # the highest number a taken batch held: everything up to it is done with
        self._waiting: list[tuple[int, Inbound]] = []  # added, not yet in a chunk
        self._chunks: list[_Chunk] = []  # started, oldest first: the last one may still run

    def add(self, inbound: Sequence[Inbound]) -> None:
        """Queue polled events for encoding ahead, and start a chunk if the thread is free."""
        for item in inbound:
            self._numbers[id(item)] = (self._next, item)
            self._waiting.append((self._next, item))
            self._next += 1
        self.pump()

    def pump(self) -> None:
        """Start the next chunk when none runs and fewer than ``limit`` events are encoded ahead."""
        if not self._waiting or (self._chunks and not self._chunks[-1].future.done()):
            return
        ahead = sum(chunk.last - max(chunk.first, self._taken + 1) + 1 for chunk in self._chunks)
        room = self._limit - ahead
        if room <= 0:
            return
        taken, self._waiting = self._waiting[:room], self._waiting[room:]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simstream-prefetch")
        future = self._executor.submit(self._pipeline.prefetch, [item for _, item in taken])
        self._chunks.append(_Chunk(taken[0][0], taken[-1][0], future))

    def take(self, batch: Sequence[Inbound]) -> Prefetched | None:
        """The vectors encoded ahead for ``batch`` (waiting for a chunk that holds any of its events; a
        failed chunk is logged and dropped: those events encode with the batch). None when none were.
        What the batch and everything polled before it needed is then forgotten."""
        numbers = [found[0] for item in batch if (found := self._numbers.get(id(item))) and found[1] is item]
        if not numbers:
            return None
        first, last = min(numbers), max(numbers)
        vectors: dict[str, Vector] = {}
        seconds = 0.0
        kept: list[_Chunk] = []
        for chunk in self._chunks:
            if chunk.first <= last and chunk.last >= first:  # holds some of the batch: wait for it
                done = _settle(chunk.future)
                if done is not None:
                    vectors.update(done.vectors)
                    seconds += 0.0 if chunk.reported else done.encode_seconds
                    chunk.reported = True
            if chunk.last > last:
                kept.append(chunk)
            elif not chunk.future.cancel():
                _settle(chunk.future)
        self._chunks = kept
        self._taken = max(self._taken, last)
        self._waiting = [(n, item) for n, item in self._waiting if n > last]
        self._numbers = {key: found for key, found in self._numbers.items() if found[0] > last}
        self.pump()
        return Prefetched(MappingProxyType(vectors), seconds) if vectors or seconds else None

    def discard(self) -> None:
        """Drop everything ahead: running work is cancelled if it has not started, else waited for."""
        for chunk in self._chunks:
            if not chunk.future.cancel():
                _settle(chunk.future)
        self._chunks, self._waiting, self._numbers = [], [], {}

    def use(self, pipeline: Encodes) -> None:
        """Encode with ``pipeline`` from now on; what was encoded ahead with the old one is dropped."""
        self.discard()
        self._pipeline = pipeline

    def close(self) -> None:
        self.discard()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def _settle(future: Future[Prefetched]) -> Prefetched | None:
    try:
        return future.result()
    except CancelledError:
        return None
    except Exception as exc:  # the batch's own processing meets the same error where it is handled
        log.warning("encoding ahead failed, the batch encodes on its own: %s: %s", type(exc).__name__, exc)
        return None
