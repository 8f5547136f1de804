"""The list JSON written without the pydantic model is the model's encoding, and reads back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from simstream.core.errors import StoreError
from simstream.core.list_store import SCORE_DECIMALS, decode_list, list_payload
from simstream.core.vector_types import Neighbor
from simstream.schemas.codec import decode_similar_items, encode_similar_items
from simstream.schemas.similar_items import SimilarItem, SimilarItems

CASES = [
    (
        [Neighbor("b", 0.123456789), Neighbor("c-1", -0.5), Neighbor("d", 1.0)],
        datetime(2026, 12, 7, 12, 0, 1, 459331, UTC),
    ),
    ([], datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)),  # no microseconds
    ([Neighbor("ü/ä", 0.0)], datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=1)))),
]


@pytest.mark.parametrize(("items", "at"), CASES)
def test_the_payload_is_the_models_encoding_and_decodes_back(items: list[Neighbor], at: datetime) -> None:
    payload = list_payload("a", items, 3, "model@1", 17, at)
    model = SimilarItems(
        product_id="a",
        list_version=17,
        model="model@1",
        computed_at=at,
        source_version=3,
        items=[SimilarItem(product_id=n.product_id, score=round(n.score, SCORE_DECIMALS)) for n in items],
    )
    assert payload == encode_similar_items(model)
    assert decode_similar_items(payload) == model  # valid by the contract
    stored = decode_list(payload)
    assert (stored.product_id, stored.list_version, stored.source_version, stored.model) == ("a", 17, 3, "model@1")
    assert stored.computed_at == at and stored.payload == payload
    assert stored.items == tuple(Neighbor(n.product_id, round(n.score, SCORE_DECIMALS)) for n in items)


def test_a_score_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        list_payload("a", [Neighbor("b", float("nan"))], 1, "m", 1, datetime.now(UTC))


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[]", b'{"schema": "other.v1"}', b'{"schema": "similar-items.v1", "product_id": "a"}'],
)
def test_a_stored_list_of_another_shape_is_a_store_error(payload: bytes) -> None:
    with pytest.raises(StoreError, match=r"not valid similar-items\.v1"):
        decode_list(payload)
