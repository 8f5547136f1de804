"""DecodeMemo: equal bytes reuse their decoding, other bytes are decoded, the oldest key goes first."""

from __future__ import annotations

import pytest

from simstream.core.decode_memo import DecodeMemo


def counting() -> tuple[DecodeMemo[str], list[bytes]]:
    calls: list[bytes] = []

    def decode(raw: bytes) -> str:
        calls.append(raw)
        return raw.decode().upper()

    return DecodeMemo(decode, capacity=2), calls


def test_equal_bytes_are_decoded_once_per_key() -> None:
    memo, calls = counting()
    assert memo.decoded("p", b"abc") == "ABC"
    assert memo.decoded("p", bytes(bytearray(b"abc"))) == "ABC"  # equal bytes, not the same object
    assert calls == [b"abc"] and memo.hits == 1


def test_other_bytes_for_a_key_are_decoded_again() -> None:
    memo, calls = counting()
    memo.decoded("p", b"abc")
    assert memo.decoded("p", b"abd") == "ABD"
    assert memo.decoded("q", b"abd") == "ABD"  # per key: q never held these bytes
    assert calls == [b"abc", b"abd", b"abd"] and memo.hits == 0


def test_what_was_written_is_not_decoded_when_read_back() -> None:
    memo, calls = counting()
    memo.remember("p", b"xyz", "written")
    assert memo.decoded("p", b"xyz") == "written" and calls == []


def test_the_key_written_longest_ago_is_forgotten_beyond_capacity() -> None:
    memo, calls = counting()
    memo.decoded("p", b"p")
    memo.decoded("q", b"q")
    memo.remember("p", b"p", "P")  # written again: now the newest
    memo.decoded("r", b"r")
    assert len(memo) == 2
    memo.decoded("p", b"p")
    memo.decoded("q", b"q")
    assert calls == [b"p", b"q", b"r", b"q"]


def test_capacity_zero_remembers_nothing() -> None:
    calls: list[bytes] = []
    memo = DecodeMemo(lambda raw: calls.append(raw) or len(raw), capacity=0)
    memo.decoded("p", b"ab")
    memo.decoded("p", b"ab")
    assert calls == [b"ab", b"ab"] and len(memo) == 0
    with pytest.raises(ValueError):
        DecodeMemo(len, capacity=-1)
