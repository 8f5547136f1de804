"""The worker's heap trimming: after work only, at most once per interval, a no-op without glibc."""

from __future__ import annotations

from simstream.consumers.heap import HeapTrimmer, _malloc_trim


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_trims_only_after_work_and_at_most_once_per_interval() -> None:
    calls: list[int] = []
    clock = Clock()
    trimmer = HeapTrimmer(min_interval_s=1.0, clock=clock, trim=lambda pad: calls.append(pad) or 1)
    trimmer.maybe_trim()
    assert calls == []  # nothing was done: an idle worker is not trimmed over and over
    trimmer.note_work()
    trimmer.maybe_trim()
    assert calls == [0]
    trimmer.note_work()
    clock.now += 0.5
    trimmer.maybe_trim()
    assert calls == [0]  # too soon
    clock.now += 0.6
    trimmer.maybe_trim()
    trimmer.maybe_trim()
    assert calls == [0, 0] and trimmer.trims == 2


def test_glibc_malloc_trim_is_found_and_callable_here() -> None:
    trim = _malloc_trim()
    assert trim is not None  # the test machines run glibc Linux
    trim(0)
