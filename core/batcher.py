"""Token-budget micro-batches with a deadline, as pure code with an injected clock.

Like TEI's queue, a batch is bounded by its item count and by its *padded* token count (the encoder
pads every sequence to the longest one, so the cost of a batch is ``len(batch) * max(tokens)``).
Like bytewax's ``now_getter``, time comes from a callable, so tests drive it without sleeping.
One batch is open at a time; batches leave in the order their items arrived.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from simstream.schemas.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_items: int
    max_tokens: int  # padded: items in the batch times the longest item's tokens
    max_wait_s: float  # measured from the batch's first item's arrival

    def __post_init__(self) -> None:
        if self.max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {self.max_items}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not self.max_wait_s >= 0:  # also rejects NaN
            raise ValueError(f"max_wait_s must be >= 0, got {self.max_wait_s}")

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchLimits:
        return cls(
            max_items=settings.batch_max_items,
            max_tokens=settings.batch_max_tokens,
            max_wait_s=settings.batch_max_wait_ms / 1000,
        )


class MicroBatcher(Generic[T]):
    """Collects items into batches; every method returns the batches that are ready, oldest first."""

    def __init__(self, limits: BatchLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._items: list[T] = []
        self._longest = 0
        self._deadline = 0.0

    @property
    def limits(self) -> BatchLimits:
        return self._limits

    @property
    def padded_tokens(self) -> int:
        """The padded token count of the open batch."""
        return len(self._items) * self._longest

    def add(self, item: T, tokens: int, waited_s: float = 0.0) -> list[list[T]]:
        """Add one item; returns the batches this closed (none, the previous one, and/or this one).

        An item that would push the open batch over a limit closes that batch first. An item that
        alone exceeds the token budget becomes a batch of its own: it is never dropped.
        ``waited_s``: how long the item already waited before it got here (queued while the caller was
        busy): the batch's wait counts from its first item's arrival, not from this call.
        """
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        ready: list[list[T]] = []
        if self._items and not self._fits(tokens):
            ready.append(self._close())
        if not self._items:
            self._deadline = self._clock() - max(0.0, waited_s) + self._limits.max_wait_s
        self._items.append(item)
        self._longest = max(self._longest, tokens)
        if self._is_full():
            ready.append(self._close())
        return ready

    def due(self) -> list[list[T]]:
        """The open batch if its deadline (first item's arrival + max wait) has passed."""
        if self._items and self._clock() >= self._deadline:
            return [self._close()]
        return []

    def flush(self) -> list[list[T]]:
        """Everything pending, whatever the limits: at shutdown or when partitions are revoked."""
        return [self._close()] if self._items else []

    def time_until_due(self) -> float | None:
        """Seconds until :meth:`due` returns a batch (0.0 when overdue), None when nothing is pending."""
        if not self._items:
            return None
        return max(0.0, self._deadline - self._clock())

    def __len__(self) -> int:
        return len(self._items)

    def _fits(self, tokens: int) -> bool:
        count = len(self._items) + 1
        return count <= self._limits.max_items and count * max(self._longest, tokens) <= self._limits.max_tokens

    def _is_full(self) -> bool:
        # Full when no further item could join: the item limit is reached, or even a zero-token item
        # would exceed the budget at the current padded length.
        count = len(self._items)
        return count >= self._limits.max_items or (count + 1) * self._longest > self._limits.max_tokens

    def _close(self) -> list[T]:
        batch, self._items, self._longest = self._items, [], 0
        return batch


def length_sorted_order(lengths: Sequence[int]) -> list[int]:
    """Indices that visit items longest first (stable), so that similar lengths share padding.

    The longest batch runs first, as in sentence-transformers' ``encode``: an out-of-memory error
    shows at once rather than at the end.
    """
    return sorted(range(len(lengths)), key=lambda index: -lengths[index])


def inverse_order(order: Sequence[int]) -> list[int]:
    """For results computed in ``order``: ``results[inverse[i]]`` belongs to original item ``i``."""
    inverse = [0] * len(order)
    for position, index in enumerate(order):
        inverse[index] = position
    return inverse


def sort_by_length(items: Sequence[T], lengths: Sequence[int]) -> tuple[list[T], list[int]]:
    """``items`` longest first, plus the indices that restore the original order of their results."""
    if len(items) != len(lengths):
        raise ValueError(f"{len(items)} items but {len(lengths)} lengths")
    order = length_sorted_order(lengths)
    return [items[index] for index in order], inverse_order(order)
