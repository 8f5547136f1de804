"""The wire contracts and their codec: what is accepted, what becomes which DecodeFailure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import orjson
import pytest

from simstream.schemas.codec import (
    DecodeFailure,
    decode_event,
    decode_similar_items,
    encode_event,
    encode_similar_items,
)
from simstream.schemas.events import Product, ProductEvent
from simstream.schemas.similar_items import SimilarItem, SimilarItems

EVENT_ID = "6f1c3d9e-0b7a-4c1e-9a55-1b2c3d4e5f60"


def event_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "schema": "product.v1",
        "type": "product.created",
        "event_id": EVENT_ID,
        "product_id": "sku-123",
        "version": 17,
        "occurred_at": "2026-11-29T12:00:00Z",
        "product": {
            "title": "Sony Turntable - PSLX350H",
            "description": "<p>Belt Drive System</p>",
            "brand": "Sony",
            "category": "Audio",
            "price": 19.9,
            "currency": "CNY",
            "tags": ["turntable"],
            "attributes": {"color": "black", "speeds": 2, "usb": False, "weight_kg": 4.5},
            "image_url": "https://example.com/p.jpg",
            "locale": "zh-CN",
        },
    }
    payload.update(changes)
    return payload


def with_product(**changes: Any) -> dict[str, Any]:
    payload = event_payload()
    payload["product"] = {**payload["product"], **changes}
    return payload


def decode(payload: Any, key: bytes | None = b"sku-123") -> ProductEvent | DecodeFailure:
    return decode_event(key, orjson.dumps(payload))


def failure(payload: Any, key: bytes | None = b"sku-123") -> DecodeFailure:
    result = decode(payload, key)
    assert isinstance(result, DecodeFailure), result
    return result


def test_decodes_the_documented_example() -> None:
    event = decode(event_payload())

    assert isinstance(event, ProductEvent)
    assert event.schema_ == "product.v1"
    assert event.type == "product.created"
    assert event.event_id == UUID(EVENT_ID)
    assert event.version == 17
    assert event.occurred_at == datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert event.product is not None
    assert event.product.price == 19.9
    assert event.product.attributes == {"color": "black", "speeds": 2, "usb": False, "weight_kg": 4.5}
    assert not event.is_delete


def test_delete_without_product_and_with_null_product() -> None:
    absent = event_payload(type="product.deleted")
    del absent["product"]

    for payload in (absent, event_payload(type="product.deleted", product=None)):
        event = decode(payload)
        assert isinstance(event, ProductEvent)
        assert event.is_delete
        assert event.product is None


def test_only_title_is_required_in_product() -> None:
    event = decode(event_payload(type="product.updated", product={"title": "Bare"}))

    assert isinstance(event, ProductEvent)
    assert event.product == Product(title="Bare")
    assert event.product.tags == []
    assert event.product.attributes == {}


def test_occurred_at_keeps_a_non_utc_offset() -> None:
    event = decode(event_payload(occurred_at="2026-11-29T20:00:00+08:00"))

    assert isinstance(event, ProductEvent)
    assert event.occurred_at == datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        (with_product(price=-1), "product.price", "greater than or equal to 0"),
        (with_product(price=True), "product.price", "valid number"),
        (with_product(price="19.9"), "product.price", "valid number"),
        (with_product(title=""), "product.title", "at least 1 character"),
        (with_product(title="   "), "product.title", "visible character"),
        (with_product(title="\u200b\u200d\ufeff"), "product.title", "visible character"),
        (with_product(title="\x00\x01"), "product.title", "control characters"),
        (with_product(title="Sony \x1b[31mred"), "product.title", "control characters"),
        (with_product(brand="Sony\x1fAudio"), "product.brand", "control characters"),
        (with_product(category="Audio\n"), "product.category", "control characters"),
        (with_product(currency="yuan"), "product.currency", "ISO 4217"),
        (with_product(currency="EUR\n"), "product.currency", "ISO 4217"),
        (with_product(tags=["ok", 3]), "product.tags[1]", "valid string"),
        (with_product(attributes={"size": [1, 2]}), "product.attributes", "attribute 'size'"),
        (with_product(attributes={"size": None}), "product.attributes", "attribute 'size'"),
        (with_product(colour="red"), "product.colour", "Extra inputs are not permitted"),
        (event_payload(version="17"), "version", "valid integer"),
        (event_payload(version=True), "version", "valid integer"),
        (event_payload(version=-1), "version", "greater than or equal to 0"),
        (event_payload(version=1.5), "version", "valid integer"),
        (event_payload(version=2**53), "version", "less than or equal to 9007199254740991"),
        (event_payload(version=2**63), "version", "less than or equal to 9007199254740991"),
        (event_payload(occurred_at="2026-11-29T12:00:00"), "occurred_at", "time zone"),
        (event_payload(occurred_at="2025-02-29T12:00:00Z"), "occurred_at", "RFC 3339"),
        (event_payload(occurred_at=1_795_000_000), "occurred_at", "RFC 3339"),
        (event_payload(event_id="not-a-uuid"), "event_id", "UUID"),
        (event_payload(product_id=""), "product_id", "at least 1 character"),
        (event_payload(product_id="   "), "product_id", "whitespace"),
        (event_payload(product_id="sku-1 "), "product_id", "whitespace"),
        (event_payload(product_id="sku\t1"), "product_id", "control characters"),
        (event_payload(product_id="x" * 257), "product_id", "at most 256"),
        (event_payload(type="product.renamed"), "type", "product.created"),
        (event_payload(source="erp"), "source", "Extra inputs are not permitted"),
        (event_payload(product=None), "<root>", "product is required when type is product.created"),
        (event_payload(type="product.deleted"), "<root>", "product must be absent or null"),
    ],
)
def test_validation_errors_name_the_field_and_why(payload: dict[str, Any], field: str, message: str) -> None:
    result = failure(payload)  # validation comes before the key check, so any key will do

    assert result.reason == "validation_error"
    assert result.detail.startswith(f"{field}: "), result.detail
    assert message in result.detail


def test_the_brief_example_detail_is_exact() -> None:
    result = failure(with_product(price=-1))

    assert result.detail == "product.price: Input should be greater than or equal to 0"


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"sku-123", None, "empty_value"),
        (b"sku-123", b"", "empty_value"),
        (None, orjson.dumps(event_payload()), "empty_key"),
        (b"", orjson.dumps(event_payload()), "empty_key"),
        (b"\xff\xfe", orjson.dumps(event_payload()), "not_utf8"),
        (b"sku-123", b'{"schema": "product.v1", "title": "caf\xe9"}', "not_utf8"),
        (b"sku-123", b'{"schema": "product.v1",', "invalid_json"),
        (b"sku-123", b"NaN", "invalid_json"),
        (b"sku-123", b"[1, 2]", "validation_error"),
        (b"sku-123", b"null", "validation_error"),
        (b"sku-123", orjson.dumps(event_payload(schema="product.v2")), "unknown_schema"),
        (
            b"sku-123",
            orjson.dumps({k: v for k, v in event_payload().items() if k != "schema"}),
            "unknown_schema",
        ),
        (b"sku-9", orjson.dumps(event_payload()), "key_mismatch"),
    ],
)
def test_bad_records_become_failures_with_a_reason(key: bytes | None, value: bytes | None, reason: str) -> None:
    result = decode_event(key, value)

    assert isinstance(result, DecodeFailure)
    assert result.reason == reason
    assert result.detail


def test_size_limit_is_a_parameter() -> None:
    value = orjson.dumps(event_payload())

    assert isinstance(decode_event(b"sku-123", value, max_bytes=len(value)), ProductEvent)
    too_large = decode_event(b"sku-123", value, max_bytes=len(value) - 1)
    assert isinstance(too_large, DecodeFailure)
    assert too_large.reason == "too_large"
    assert str(len(value)) in too_large.detail


def test_default_size_limit_is_one_mebibyte() -> None:
    padded = orjson.dumps(with_product(description="x" * 1_048_576))

    result = decode_event(b"sku-123", padded)

    assert isinstance(result, DecodeFailure)
    assert result.reason == "too_large"


def test_key_mismatch_names_both_ids() -> None:
    result = failure(event_payload(), key=b"sku-9")

    assert "sku-9" in result.detail
    assert "sku-123" in result.detail


def test_many_errors_are_capped_in_the_detail() -> None:
    payload = with_product(tags=[1, 2, 3, 4, 5, 6, 7])

    result = failure(payload)

    assert result.detail.count("product.tags[") == 5
    assert result.detail.endswith("and 2 more")


def test_decode_failure_is_a_frozen_value() -> None:
    result = DecodeFailure("invalid_json", "x")

    assert result == DecodeFailure("invalid_json", "x")
    with pytest.raises(AttributeError):
        result.reason = "too_large"  # type: ignore[misc]


def test_events_are_frozen() -> None:
    event = decode(event_payload())
    assert isinstance(event, ProductEvent)

    with pytest.raises(ValueError, match="frozen"):
        event.version = 18


def test_encode_decode_round_trip() -> None:
    event = decode(event_payload())
    assert isinstance(event, ProductEvent)

    encoded = encode_event(event)

    assert decode_event(b"sku-123", encoded) == event
    assert orjson.loads(encoded)["schema"] == "product.v1"


def test_encode_leaves_out_unset_fields_and_the_product_of_a_delete() -> None:
    event = ProductEvent(
        type="product.deleted",
        event_id=UUID(EVENT_ID),
        product_id="sku-123",
        version=3,
        occurred_at=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=1))),
    )

    wire = orjson.loads(encode_event(event))

    assert wire == {
        "schema": "product.v1",
        "type": "product.deleted",
        "event_id": EVENT_ID,
        "product_id": "sku-123",
        "version": 3,
        "occurred_at": "2026-01-01T00:00:00+01:00",
    }


def similar_items(**changes: Any) -> SimilarItems:
    fields: dict[str, Any] = {
        "product_id": "sku-123",
        "list_version": 5,
        "model": "all-MiniLM-L6-v2@8b3219a9",
        "computed_at": datetime(2026, 11, 29, 12, 0, 1, 250_000, tzinfo=UTC),
        "source_version": 17,
        "items": [SimilarItem(product_id="sku-9", score=0.912), SimilarItem(product_id="sku-7", score=0.5)],
    }
    fields.update(changes)
    return SimilarItems(**fields)


def test_similar_items_round_trip_and_wire_shape() -> None:
    similar = similar_items()

    encoded = encode_similar_items(similar)

    assert decode_similar_items(encoded) == similar
    wire = orjson.loads(encoded)
    assert wire["schema"] == "similar-items.v1"
    assert wire["computed_at"] == "2026-11-29T12:00:01.250000Z"
    assert wire["items"] == [{"product_id": "sku-9", "score": 0.912}, {"product_id": "sku-7", "score": 0.5}]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"product_id": "sku-123", "score": 1.0}], "the product itself"),
        ([{"product_id": "a", "score": 0.9}, {"product_id": "a", "score": 0.8}], "repeat"),
    ],
)
def test_similar_items_exclude_self_and_duplicates(items: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        similar_items(items=items)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"", "empty_value"),
        (b"{", "invalid_json"),
        (orjson.dumps({"schema": "product.v1"}), "unknown_schema"),
        (orjson.dumps({"schema": "similar-items.v1", "product_id": "a"}), "validation_error: list_version"),
    ],
)
def test_decode_similar_items_raises_value_error_with_reason(value: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_similar_items(value)
