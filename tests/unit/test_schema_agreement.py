"""The exported JSON Schema and the decoder give the same verdict on every event.

Events are generated from the committed ``product.v1.json`` itself (hypothesis-jsonschema), then
mutated field by field with values that sit on the rules' edges; a validator in another service that
reads the schema must accept exactly what the worker accepts.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
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
    event: dict[str, Any] = draw(from_schema(SCHEMA))
    field = draw(st.sampled_from(FIELDS))
    value = draw(edge_value(field))
    product = event.get("product")
    if field in ("title", "brand", "category"):
        if isinstance(product, dict):
            event["product"] = {**product, field: value}
    else:
        event[field] = value
    return event


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(from_schema(SCHEMA))
def test_every_event_the_schema_generates_is_accepted(event: dict[str, Any]) -> None:
    assert decoder_verdict(event), event


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(mutated_events())
def test_schema_and_decoder_agree_on_edge_values(event: dict[str, Any]) -> None:
    assert schema_verdict(event) == decoder_verdict(event), event


@pytest.mark.parametrize("when", EDGE_TIMES)
def test_occurred_at_edges_agree(when: object) -> None:
    event = {
        "schema": "product.v1",
        "type": "product.deleted",
        "event_id": "6f1c3d9e-0b7a-4c1e-9a55-1b2c3d4e5f60",
        "product_id": "sku-1",
        "version": 1,
        "occurred_at": when,
    }
    assert schema_verdict(event) == decoder_verdict(event)


@pytest.mark.parametrize("version", [2**53, 2**60, 2**63])
def test_versions_the_server_cannot_compare_are_refused_by_both(version: int) -> None:
    event = {
        "schema": "product.v1",
        "type": "product.deleted",
        "event_id": "6f1c3d9e-0b7a-4c1e-9a55-1b2c3d4e5f60",
        "product_id": "sku-1",
        "version": version,
        "occurred_at": "2026-11-29T12:00:00Z",
    }
    assert not schema_verdict(event)
    assert not decoder_verdict(event)
