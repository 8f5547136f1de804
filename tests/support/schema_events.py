"""Events for property tests: generated from the exported JSON Schema, mutated on the contract's edges,
and the two verdicts on them (the schema's, the decoder's)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from simstream.schemas.codec import DecodeFailure, decode_event
from simstream.schemas.json_schema import BUNDLED_SCHEMA_DIR
from simstream.schemas.text_rules import OCCURRED_AT_PATTERN

SCHEMA: dict[str, Any] = json.loads((BUNDLED_SCHEMA_DIR / "product.v1.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

EDGE_TEXT = [
    "",
    " ",
    "\u200b\u200b",
    "\x00",
    "\x1b[31m",
    "a\x1fb",
    "a\tb",
    "line\n",
    "\ufeffsku",
    "sku ",
    " sku",
    "\u3000",
    "Sony",
    "x" * 2001,
]
EDGE_VERSIONS = [0, -1, 2**53 - 1, 2**53, 2**60, 2**63, 2**64, 1.0, True, "3"]
EDGE_TIMES = [
    "2026-11-29T12:00:00Z",
    "2026-11-29T12:00:00",
    "2026-11-29 12:00:00Z",
    "2026-11-29T12:00:00+01:00",
    "2026-11-29T12:00:00.123456789Z",
    "2026-11-29T12:00:00Z\n",
    "2025-02-29T00:00:00Z",
    "2024-02-29T00:00:00z",
    "2000-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "2026-11-29T24:00:00Z",
    "2026-11-29T12:00:60Z",
    "2026-11-29T12:00:00-24:00",
    1764417600,
]
FIELDS = ["product_id", "version", "occurred_at", "title", "brand", "category"]


def schema_verdict(event: Any) -> bool:
    return VALIDATOR.is_valid(event)


def decoder_verdict(event: Any) -> bool:
    key = event.get("product_id") if isinstance(event, dict) else None
    key_bytes = key.encode("utf-8", "surrogatepass") if isinstance(key, str) else b"k"
    # The standard library writes integers of any size (orjson stops at 64 bits), as a producer might.
    value = json.dumps(event, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return not isinstance(decode_event(key_bytes, value), DecodeFailure)


def edge_value(field: str) -> st.SearchStrategy[Any]:
    if field == "version":
        return st.sampled_from(EDGE_VERSIONS) | st.integers()
    if field == "occurred_at":
        return st.sampled_from(EDGE_TIMES) | st.from_regex(OCCURRED_AT_PATTERN)
    return st.sampled_from(EDGE_TEXT) | st.text(max_size=8)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = draw(schema_events())
    field = draw(st.sampled_from(FIELDS))
    value = draw(edge_value(field))
    product = event.get("product")
    if field in ("title", "brand", "category"):
        if isinstance(product, dict):
            event["product"] = {**product, field: value}
    else:
        event[field] = value
    return event


def schema_events() -> st.SearchStrategy[dict[str, Any]]:
    return from_schema(SCHEMA)
