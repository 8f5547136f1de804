"""Parsing RediSearch replies the same way whether the client speaks RESP2 or RESP3.

RESP2 answers FT.SEARCH with a flat array ``[total, key, [field, value, ...], ...]`` and FT.INFO with a
flat ``[name, value, ...]`` array; RESP3 answers with maps. Everything here returns plain ``str`` keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import methodcaller
from typing import Any


def text(value: object) -> str:
    """A reply scalar as text (the client runs with ``decode_responses=False``)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


_DECODE = methodcaller("decode", "utf-8", "replace")


def _texts(values: Sequence[Any]) -> list[str]:
    """Each value as :func:`text` gives it; bytes (all of a RESP2 reply) decoded in C, not per call."""
    try:
        return list(map(_DECODE, values))
    except AttributeError:  # not all bytes
        return [text(value) for value in values]


def _pairs_to_dict(flat: Sequence[Any]) -> dict[str, Any]:
    return {text(flat[i]): flat[i + 1] for i in range(0, len(flat) - 1, 2)}


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return {text(k): v for k, v in value.items()}
    if isinstance(value, list | tuple):
        return _pairs_to_dict(value)
    raise TypeError(f"expected a map or a flat pair list, got {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class SearchHit:
    key: str
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class SearchReply:
    total: int
    hits: list[SearchHit]


def parse_search(reply: Any) -> SearchReply:
    """FT.SEARCH reply (with returned fields, not NOCONTENT) -> total and hits in server order."""
    if isinstance(reply, Mapping):
        top = _as_dict(reply)
        hits = []
        for result in top.get("results", []):
            item = _as_dict(result)
            fields = {k: text(v) for k, v in _as_dict(item.get("extra_attributes") or {}).items()}
            hits.append(SearchHit(key=text(item["id"]), fields=fields))
        return SearchReply(total=int(top.get("total_results", len(hits))), hits=hits)
    total = int(reply[0])
    rest = reply[1:]
    hits = []
    for i in range(0, len(rest), 2):
        raw_fields = rest[i + 1] if i + 1 < len(rest) else []
        # Every hit of every search a batch runs passes here: names and values decoded in bulk.
        fields = dict(zip(_texts(raw_fields[0::2]), _texts(raw_fields[1::2]), strict=False))  # odd: last dropped
        hits.append(SearchHit(key=text(rest[i]), fields=fields))
    return SearchReply(total=total, hits=hits)


def parse_search_keys(reply: Any) -> SearchReply:
    """FT.SEARCH reply with NOCONTENT (keys only: ``[total, key, key, ...]`` in RESP2) -> total and hits."""
    if isinstance(reply, Mapping):
        return parse_search(reply)  # RESP3 has the same shape either way, with no fields
    return SearchReply(total=int(reply[0]), hits=[SearchHit(key=text(key), fields={}) for key in reply[1:]])


def parse_info(reply: Any) -> dict[str, Any]:
    """FT.INFO reply -> its top-level fields by name (values left as the client returned them)."""
    return _as_dict(reply)


def info_attributes(info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The schema attributes of a parsed FT.INFO, each as a ``{name: value}`` dict with str keys."""
    return [_as_dict(attribute) for attribute in info.get("attributes", [])]
