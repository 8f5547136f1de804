"""Property: decoding an input record never raises, whatever the bytes (bad records are values)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from simstream.schemas.codec import DecodeFailure, decode_event, encode_event
from simstream.schemas.events import ProductEvent

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
# Mostly well-formed events with one field replaced by anything: reaches the deep validators.
base_event: dict[str, Any] = {
    "schema": "product.v1",
    "type": "product.updated",
    "event_id": "6f1c3d9e-0b7a-4c1e-9a55-1b2c3d4e5f60",
    "product_id": "sku-1",
    "version": 1,
    "occurred_at": "2026-11-29T12:00:00Z",
    "product": {"title": "t", "attributes": {"a": 1}},
}
field_names = st.sampled_from([*base_event, "extra"])
product_field_names = st.sampled_from(["title", "price", "tags", "attributes", "currency", "locale", "brand"])


def assert_decodes_to_a_value(key: bytes | None, value: bytes | None) -> None:
    result = decode_event(key, value, max_bytes=4096)
    assert isinstance(result, ProductEvent | DecodeFailure)
    if isinstance(result, DecodeFailure):
        assert result.reason != "internal_error", result.detail
        assert result.detail
    else:
        assert key is not None and key.decode() == result.product_id
        assert decode_event(key, encode_event(result)) == result


@settings(max_examples=300, deadline=None)
@given(key=st.none() | st.binary(max_size=12), value=st.none() | st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(key: bytes | None, value: bytes | None) -> None:
    assert_decodes_to_a_value(key, value)


@settings(max_examples=300, deadline=None)
@given(payload=json_values)
def test_arbitrary_json_never_raises(payload: Any) -> None:
    assert_decodes_to_a_value(b"sku-1", json.dumps(payload).encode())


@settings(max_examples=400, deadline=None)
@given(field=field_names, replacement=json_values, product_field=product_field_names, product_value=json_values)
def test_events_with_one_wild_field_never_raise(
    field: str, replacement: Any, product_field: str, product_value: Any
) -> None:
    payload = {**base_event, "product": {**base_event["product"], product_field: product_value}}
    payload[field] = replacement

    assert_decodes_to_a_value(b"sku-1", json.dumps(payload).encode())
