"""Encode the next batch while the current one is applied: at most one batch ahead, on one thread.

Applying a batch is mostly waiting on Redis and Kafka; encoding is mostly torch, which releases the
GIL. So while the worker's thread applies batch N (pipeline, checkpoint), one background thread runs
:meth:`Pipeline.prefetch` for batch N+1. A prefetch is only a cache of vectors: when it fails, or the
batch it was for changed (filtered, split, retried), :meth:`Pipeline.process` encodes what is missing
on the worker's thread, where failures are retried or isolated as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Protocol

from simstream.core.pipeline import Inbound, Prefetched

log = logging.getLogger("simstream.worker")


class Encodes(Protocol):
    def prefetch(self, batch: Sequence[Inbound]) -> Prefetched: ...


class Prefetcher:
    def __init__(self, pipeline: Encodes) -> None:
        self._pipeline = pipeline
        self._executor: ThreadPoolExecutor | None = None  # started with the first prefetch
        self._ahead: tuple[object, Future[Prefetched]] | None = None  # (the batch it is for, its work)

    def start(self, batch: object, inbound: Sequence[Inbound]) -> None:
        """Begin encoding ``inbound``, the events of ``batch`` (matched by identity in :meth:`take`).
        A prefetch still running, not taken, is waited for and dropped: never more than one ahead."""
        self.discard()
        if not inbound:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simstream-prefetch")
        self._ahead = (batch, self._executor.submit(self._pipeline.prefetch, list(inbound)))

    def use(self, pipeline: Encodes) -> None:
        """Encode with ``pipeline`` from now on; what was encoded ahead with the old one is dropped."""
        self.discard()
        self._pipeline = pipeline

    def take(self, batch: object) -> Prefetched | None:
        """The vectors prefetched for ``batch`` (waiting for them); None when none were started for it
        or the prefetch failed (the failure is logged and dropped: the batch encodes on its own)."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        started_for, future = ahead
        if started_for is not batch:
            _settle(future)
            return None
        return _settle(future)

    def discard(self) -> None:
        """Drop the prefetch ahead, if any: cancelled if it has not started, else waited for."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and not ahead[1].cancel():
            _settle(ahead[1])

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
