"""The output contract ``similar-items.v1``: a product's current similar-item list (design.md §3).

Written to a compacted topic keyed by ``product_id``; a delete is a tombstone (null value), never a
record of this model.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, Field, StrictStr, model_validator

from simstream.schemas.events import EventTime, ProductId, Version, require_schema_field, wire_model_config

SIMILAR_ITEMS_SCHEMA: Final = "similar-items.v1"


class SimilarItem(BaseModel):
    """One neighbour: its id and its similarity score, higher is more similar, at most 1.

    The score is the hybrid score of README "What a similar-items list is": the cosine of the two
    vectors averaged with lexical evidence (a shared model code; the IDF-weighted token cosine under
    the term snapshot that ``model`` names), each with its weight; the plain cosine when both lexical
    weights are 0. Scores of different products compare: README "Scores and SIMSTREAM_MIN_SCORE".
    """

    model_config = wire_model_config()

    product_id: ProductId
    score: Annotated[float, Field(strict=True, allow_inf_nan=False)]


class SimilarItems(BaseModel):
    """A product's list of similar items, best first, itself excluded."""

    model_config = wire_model_config(require_schema_field)

    schema_: Literal["similar-items.v1"] = Field(default=SIMILAR_ITEMS_SCHEMA, alias="schema")
    product_id: ProductId
    # Rises with every list emitted for this product (the catalog write sequence it was computed at,
    # not a count): readers keep the highest they saw.
    list_version: Version
    model: Annotated[StrictStr, Field(min_length=1, examples=["all-MiniLM-L6-v2@8b3219a9"])]
    computed_at: EventTime
    # The product's own catalog version the list was computed for.
    source_version: Version
    items: list[SimilarItem]

    @model_validator(mode="after")
    def _items_are_other_distinct_products(self) -> SimilarItems:
        seen: set[str] = set()
        for item in self.items:
            if item.product_id == self.product_id:
                raise ValueError(f"items must not contain the product itself ({self.product_id!r})")
            if item.product_id in seen:
                raise ValueError(f"items must not repeat a product ({item.product_id!r})")
            seen.add(item.product_id)
        return self
