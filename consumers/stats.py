"""In-process counters of the worker, read by the demo, tests and logs.

Everything here lives as long as the worker, so every collection has a fixed bound: freshness keeps
the latest samples in a preallocated ring, emitted ids the most recent distinct ids.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

# 65,536 float64 samples (512 KiB, allocated once): minutes of history at hundreds of lists per second.
FRESHNESS_SAMPLES: Final = 65_536
# Distinct ids remembered (~150 B each): the demo's and the tests' catalogs fit whole, so there the
# count is exact; beyond it the oldest are forgotten and a forgotten id seen again counts again.
EMITTED_IDS: Final = 100_000


class SampleRing:
    """The latest ``capacity`` samples, and how many were ever added (a position to read from)."""

    def __init__(self, capacity: int = FRESHNESS_SAMPLES) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._values: npt.NDArray[np.float64] = np.zeros(capacity, dtype=np.float64)
        self.added = 0

    @property
    def capacity(self) -> int:
        return len(self._values)

    def extend(self, samples: Iterable[float]) -> None:
        for sample in samples:
            self._values[self.added % self.capacity] = sample
            self.added += 1

    def since(self, position: int = 0) -> list[float]:
        """The samples added at or after ``position`` (a past ``added``) that the ring still holds."""
        start = max(position, self.added - self.capacity, 0)
        return [float(self._values[i % self.capacity]) for i in range(start, self.added)]

    def __len__(self) -> int:
        return min(self.added, self.capacity)


class RecentIds:
    """A set of the ``capacity`` most recently added distinct ids, and how many distinct ids were added
    (exact until one is forgotten: an id added again after it was evicted counts twice)."""

    def __init__(self, capacity: int = EMITTED_IDS) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._distinct = 0

    def add(self, item: str) -> None:
        if item in self._ids:
            self._ids.move_to_end(item)
            return
        self._ids[item] = None
        self._distinct += 1
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return self._distinct

    @property
    def held(self) -> int:
        return len(self._ids)


@dataclass(slots=True)
class WorkerStats:
    records_in: int = 0
    dead_letters: int = 0
    stale: int = 0
    encoded: int = 0
    metadata_only: int = 0
    deleted: int = 0
    lists_emitted: int = 0
    batches: int = 0
    records_done: int = 0  # records of finished batches (committed and accounted for)
    retries: int = 0
    processing_errors: int = 0  # records dead-lettered because processing failed on them alone
    prefetched_batches: int = 0  # batches encoded ahead, while the batch before them was applied
    encode_s: float = 0.0
    first_load_passes: int = 0  # bulk passes that built every list of a first load
    shadow_encoded: int = 0  # texts encoded for the shadow model while a model change runs
    generation_switches: int = 0  # pipelines rebuilt because `simstream model` changed the live/shadow model
    first_load_lists: int = 0  # lists those passes emitted
    first_load_s: float = 0.0
    freshness_s: SampleRing = field(default_factory=SampleRing)
    emitted_ids: RecentIds = field(default_factory=RecentIds)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile of the freshness samples the ring holds (the latest ones)."""
        with self.lock:
            samples = sorted(self.freshness_s.since())
        if not samples:
            return None
        index = min(len(samples) - 1, max(0, round(q / 100 * (len(samples) - 1))))
        return samples[index]
