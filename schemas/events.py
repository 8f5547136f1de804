"""The input contract ``product.v1``: one catalog change per Kafka record (design.md §3).

Strict at the edges that matter for correctness (the version is a real integer, the event time is
time-zone aware, a delete carries no product) and closed to unknown fields, so that a producer's typo
becomes a dead letter instead of a silently ignored field. ``product.attributes`` is the one open
map, for catalog-specific facets.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from simstream.schemas.text_rules import (
    CONTROL_CHARS,
    CURRENCY_PATTERN,
    ID_FORBIDDEN,
    LOCALE_PATTERN,
    OCCURRED_AT_PATTERN,
    TEXT_CONTROL_CHARS,
    UUID_PATTERN,
    VISIBLE_CHAR,
    Forbid,
    Require,
)

PRODUCT_SCHEMA: Final = "product.v1"
PRODUCT_ID_MAX_CHARS: Final = 256
TITLE_MAX_CHARS: Final = 2_000
DESCRIPTION_MAX_CHARS: Final = 200_000
SHORT_TEXT_MAX_CHARS: Final = 500
URL_MAX_CHARS: Final = 2_048
MAX_TAGS: Final = 200
MAX_ATTRIBUTES: Final = 500
# Versions are compared on the Redis server as Lua numbers (doubles): exact only below 2**53.
MAX_VERSION: Final = 2**53 - 1

EventType = Literal["product.created", "product.updated", "product.deleted"]
AttributeValue = StrictStr | StrictBool | StrictInt | StrictFloat

JsonSchemaHook = Callable[[dict[str, Any]], None]


def wire_model_config(json_schema_extra: JsonSchemaHook | None = None) -> ConfigDict:
    """Shared by every wire model: immutable, unknown fields rejected, Python name or wire alias
    accepted, the wire alias always written."""
    return ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        json_schema_extra=json_schema_extra,
    )


def require_schema_field(schema: dict[str, Any]) -> None:
    """JSON Schema hook: ``schema`` has a default in Python for convenience but is required on the wire."""
    schema["required"] = ["schema", *schema.get("required", [])]


def _product_event_json_schema(schema: dict[str, Any]) -> None:
    require_schema_field(schema)
    # The model validator's rule, for validators in other languages.
    schema["allOf"] = [
        {
            "if": {"properties": {"type": {"const": "product.deleted"}}},
            "then": {"properties": {"product": {"type": "null"}}},
            "else": {"required": ["product"], "properties": {"product": {"type": "object"}}},
        }
    ]


def wire_string(pattern: str, message: str) -> tuple[BeforeValidator, Any]:
    """A value that travels as a string matching ``pattern`` (checked before pydantic's own, laxer,
    parsing), stated as that pattern in the JSON Schema. Python objects (a datetime, a UUID) pass."""
    compiled = re.compile(pattern)

    def check(value: Any) -> Any:
        if isinstance(value, str) and not compiled.search(value):
            raise ValueError(message)
        if not isinstance(value, str | datetime | UUID):
            raise ValueError(message)  # lax parsing would take a bare number as a Unix time or an int UUID
        return value

    def state(schema: dict[str, Any]) -> None:
        schema["pattern"] = pattern

    return BeforeValidator(check), Field(json_schema_extra=state)


def _integral_number(value: Any) -> Any:
    # JSON Schema's "integer" is any number without a fractional part: 17.0 and 1.7e1 are 17 too.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _require_scalar_attributes(value: Any) -> Any:
    # One readable error instead of one per member of the value union.
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(item, str | int | float):  # bool is an int
                raise ValueError(f"attribute {key!r} must be a string, number or boolean, not {type(item).__name__}")
    return value


# An id is a Kafka key and a Redis key: "sku-1" and "sku-1 " would silently be two products.
ProductId = Annotated[
    StrictStr,
    Field(min_length=1, max_length=PRODUCT_ID_MAX_CHARS, examples=["sku-123"]),
    Forbid(ID_FORBIDDEN, "must not contain control characters nor start or end with whitespace"),
]
Version = Annotated[StrictInt, Field(ge=0, le=MAX_VERSION), BeforeValidator(_integral_number)]
EventTime = Annotated[
    AwareDatetime,
    *wire_string(
        OCCURRED_AT_PATTERN, "must be an RFC 3339 date-time string with a time zone, e.g. 2026-11-29T12:00:00Z"
    ),
]
EventId = Annotated[UUID, *wire_string(UUID_PATTERN, "must be a UUID in its canonical 8-4-4-4-12 hex form")]
# brand and category are TAG fields: a control character (the TAG separator among them) would split one
# value into two, or make it unreadable.
Label = Annotated[
    StrictStr,
    Field(max_length=SHORT_TEXT_MAX_CHARS),
    Forbid(CONTROL_CHARS, "must not contain control characters"),
]


class Product(BaseModel):
    """The catalog fields of one product; only the title is required."""

    model_config = wire_model_config()

    title: Annotated[
        StrictStr,
        Field(min_length=1, max_length=TITLE_MAX_CHARS),
        Forbid(TEXT_CONTROL_CHARS, "must not contain control characters other than tab and line breaks"),
        Require(VISIBLE_CHAR, "must contain a visible character (not only spaces, controls or zero-width marks)"),
    ]
    description: Annotated[StrictStr, Field(max_length=DESCRIPTION_MAX_CHARS)] | None = None
    brand: Label | None = None
    category: Label | None = None
    price: Annotated[float, Field(ge=0, strict=True, allow_inf_nan=False)] | None = None
    currency: (
        Annotated[StrictStr, Field(examples=["CNY", "EUR"]), Require(CURRENCY_PATTERN, "must be an ISO 4217 code")]
        | None
    ) = None
    tags: Annotated[list[Annotated[StrictStr, Field(max_length=SHORT_TEXT_MAX_CHARS)]], Field(max_length=MAX_TAGS)] = (
        Field(default_factory=list)
    )
    attributes: Annotated[
        dict[Annotated[StrictStr, Field(min_length=1, max_length=SHORT_TEXT_MAX_CHARS)], AttributeValue],
        Field(max_length=MAX_ATTRIBUTES),
        BeforeValidator(_require_scalar_attributes),
    ] = Field(default_factory=dict)
    image_url: Annotated[StrictStr, Field(max_length=URL_MAX_CHARS)] | None = None
    locale: (
        Annotated[StrictStr, Field(examples=["zh-CN"]), Require(LOCALE_PATTERN, "must be a language tag like zh-CN")]
        | None
    ) = None


class ProductEvent(BaseModel):
    """One record of the input topic; its Kafka key must equal its product_id."""

    model_config = wire_model_config(_product_event_json_schema)

    schema_: Literal["product.v1"] = Field(default=PRODUCT_SCHEMA, alias="schema")
    type: EventType
    event_id: EventId
    product_id: ProductId
    # The catalog's revision of this product: an event older than the stored one changes nothing.
    version: Version
    occurred_at: EventTime
    product: Product | None = None

    @model_validator(mode="after")
    def _product_matches_type(self) -> ProductEvent:
        if self.type == "product.deleted":
            if self.product is not None:
                raise ValueError("product must be absent or null when type is product.deleted")
        elif self.product is None:
            raise ValueError(f"product is required when type is {self.type}")
        return self

    @property
    def is_delete(self) -> bool:
        return self.type == "product.deleted"
