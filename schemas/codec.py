"""Bytes <-> wire models. Decoding an input record never raises: a bad record is a value.

The consumer splits decoded records into events and :class:`DecodeFailure` s (bytewax's oks/errs);
failures go to the dead-letter topic with ``reason`` as a header, so one poison record never stops
a partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from simstream.schemas.events import PRODUCT_SCHEMA, ProductEvent
from simstream.schemas.similar_items import SIMILAR_ITEMS_SCHEMA, SimilarItems

# Kafka's default message.max.bytes is about 1 MiB; a bigger product record is a producer bug.
DEFAULT_MAX_EVENT_BYTES: Final = 1_048_576
# Failure details travel as Kafka headers and log lines: keep them readable, not exhaustive.
MAX_DETAIL_CHARS: Final = 1_000
MAX_REPORTED_ERRORS: Final = 5

DecodeReason = Literal[
    "empty_value",  # null value (a tombstone) or zero bytes: the input topic has no deletes by tombstone
    "too_large",
    "empty_key",
    "not_utf8",
    "invalid_json",
    "unknown_schema",
    "validation_error",
    "key_mismatch",
    "internal_error",  # a bug in decoding; still a value so that the partition keeps moving
    # Set by the worker after decoding:
    "empty_text",  # the product's embedded text is empty once cleaned (a title of markup only)
    "processing_error",  # processing failed for this record alone (the batch was split to find it)
]

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    """Why a record could not become an event: a short machine code and a human sentence."""

    reason: DecodeReason
    detail: str


def decode_event(
    key: bytes | None, value: bytes | None, *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> ProductEvent | DecodeFailure:
    """Decode one input record; the key must be the UTF-8 ``product_id`` of the event."""
    try:
        return _decode_event(key, value, max_bytes)
    except Exception as exc:  # the contract is "never raises": a crash here would block the partition
        return DecodeFailure("internal_error", clip_detail(f"{type(exc).__name__}: {exc}"))


def _decode_event(key: bytes | None, value: bytes | None, max_bytes: int) -> ProductEvent | DecodeFailure:
    decoded = _decode_model(value, ProductEvent, PRODUCT_SCHEMA, max_bytes)
    if isinstance(decoded, DecodeFailure):
        return decoded
    if not key:
        return DecodeFailure("empty_key", "record key is missing or empty; it must be the product_id")
    try:
        key_text = key.decode("utf-8")
    except UnicodeDecodeError:
        return DecodeFailure("not_utf8", "record key is not valid UTF-8")
    if key_text != decoded.product_id:
        return DecodeFailure(
            "key_mismatch", clip_detail(f"record key {key_text!r} differs from product_id {decoded.product_id!r}")
        )
    return decoded


def decode_similar_items(value: bytes) -> SimilarItems:
    """Decode one output record; raises ``ValueError`` naming the reason (a bad list here is a bug)."""
    decoded = _decode_model(value, SimilarItems, SIMILAR_ITEMS_SCHEMA, max_bytes=None)
    if isinstance(decoded, DecodeFailure):
        raise ValueError(f"{decoded.reason}: {decoded.detail}")
    return decoded


def encode_event(event: ProductEvent) -> bytes:
    """Compact JSON; unset optional fields (and the product of a delete) are left out."""
    return _encode(event)


def encode_similar_items(similar: SimilarItems) -> bytes:
    return _encode(similar)


def _encode(model: BaseModel) -> bytes:
    return orjson.dumps(model.model_dump(mode="json", by_alias=True, exclude_none=True))


def _decode_model(
    value: bytes | None, model: type[ModelT], schema_name: str, max_bytes: int | None
) -> ModelT | DecodeFailure:
    if not value:
        return DecodeFailure("empty_value", "record value is null or empty")
    if max_bytes is not None and len(value) > max_bytes:
        return DecodeFailure("too_large", f"record value has {len(value)} bytes, the limit is {max_bytes}")
    try:
        payload = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return _classify_json_error(value, exc)
    if not isinstance(payload, dict):
        return DecodeFailure("validation_error", f"<root>: must be a JSON object, not {_json_type(payload)}")
    schema = payload.get("schema")
    if schema != schema_name:
        shown = "missing" if schema is None else repr(schema)
        detail = f"schema: {shown} is not supported, expected {schema_name!r}"
        return DecodeFailure("unknown_schema", clip_detail(detail))
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        return DecodeFailure("validation_error", describe_validation_error(exc))


def _classify_json_error(value: bytes, exc: orjson.JSONDecodeError) -> DecodeFailure:
    # orjson rejects invalid UTF-8 as a JSON error; a separate code tells producers which bug they have.
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as utf8_exc:
        return DecodeFailure("not_utf8", f"record value is not valid UTF-8 (byte {utf8_exc.start})")
    return DecodeFailure("invalid_json", clip_detail(f"record value is not valid JSON: {exc}"))


def describe_validation_error(exc: ValidationError) -> str:
    """``"product.price: Input should be greater than or equal to 0; ..."``, capped in count and length."""
    errors = exc.errors(include_url=False, include_input=False)
    parts = [f"{_location(error['loc'])}: {error['msg']}" for error in errors[:MAX_REPORTED_ERRORS]]
    if len(errors) > MAX_REPORTED_ERRORS:
        parts.append(f"and {len(errors) - MAX_REPORTED_ERRORS} more")
    return clip_detail("; ".join(parts))


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "<root>"


def _json_type(payload: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if payload is None else names.get(type(payload), type(payload).__name__)


def clip_detail(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"
