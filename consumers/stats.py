"""In-process counters of the worker, read by the demo, tests and logs."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


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
    encode_s: float = 0.0
    freshness_s: list[float] = field(default_factory=list)
    emitted_ids: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def percentile(self, q: float) -> float | None:
        with self.lock:
            samples = sorted(self.freshness_s)
        if not samples:
            return None
        index = min(len(samples) - 1, max(0, round(q / 100 * (len(samples) - 1))))
        return samples[index]
