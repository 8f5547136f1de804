"""The last decoding of each key's stored bytes, reused while Redis returns the same bytes.

Every batch reads the state of about two thousand lists and decodes their pool and current-list JSON,
and almost all of them are the bytes this worker wrote itself in an earlier batch. Equal bytes decode
to equal values, so a read whose bytes equal the ones remembered for that key reuses their decoding.
Redis's bytes are still read every time: this decides nothing about what is current, it only skips
parsing the same bytes again (a byte comparison instead of a JSON decode).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class DecodeMemo(Generic[T]):
    """Per key, the bytes last seen and their decoding; the oldest key is forgotten beyond ``capacity``."""

    def __init__(self, decode: Callable[[bytes], T], capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._decode = decode
        self._capacity = capacity
        self._held: dict[str, tuple[bytes, T]] = {}
        self.hits = 0

    def decoded(self, key: str, raw: bytes) -> T:
        """``decode(raw)``, from memory when ``raw`` equals the bytes remembered for ``key``."""
        held = self._held.get(key)
        if held is not None and held[0] == raw:
            self.hits += 1
            return held[1]
        value = self._decode(raw)
        self.remember(key, raw, value)
        return value

    def remember(self, key: str, raw: bytes, value: T) -> None:
        """``value`` is what ``raw`` decodes to (the caller just encoded it, or wrote these bytes)."""
        if not self._capacity:
            return
        held = self._held
        held.pop(key, None)  # re-inserted last: the key written longest ago is forgotten first
        held[key] = (raw, value)
        if len(held) > self._capacity:
            del held[next(iter(held))]

    def __len__(self) -> int:
        return len(self._held)
