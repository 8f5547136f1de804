"""The one product event builder: its default event type, an explicit type, and invalid events refused."""

from __future__ import annotations

import pytest

from simstream.producers.catalog import CatalogRow
from simstream.producers.publish import event_for, product_event

FIELDS = {"title": "Sony Turntable - PSLX350H", "price": 149.0}


@pytest.mark.parametrize(
    ("version", "fields", "expected"),
    [(1, FIELDS, "product.created"), (2, FIELDS, "product.updated"), (3, None, "product.deleted")],
)
def test_the_default_type_follows_the_fields_and_the_version(
    version: int, fields: dict[str, object] | None, expected: str
) -> None:
    event = product_event("sku-1", version, fields)
    assert (event.type, event.product_id, event.version) == (expected, "sku-1", version)
    assert (event.product is None) == (fields is None)


def test_an_explicit_type_wins_and_every_event_gets_its_own_id() -> None:
    first = product_event("sku-1", 1, FIELDS, event_type="product.updated")
    second = product_event("sku-1", 1, FIELDS, event_type="product.updated")
    assert first.type == "product.updated" and first.product is not None and first.product.price == 149.0
    assert first.event_id != second.event_id
    assert first.occurred_at.utcoffset() is not None


def test_an_event_that_breaks_the_contract_is_refused() -> None:
    with pytest.raises(ValueError):
        product_event("sku-1", 2, FIELDS, event_type="product.deleted")
    with pytest.raises(ValueError):
        product_event("sku-1", 2, None, event_type="product.updated")


def test_a_catalog_row_keeps_its_own_version_over_the_runs() -> None:
    versioned = CatalogRow(line=1, product_id="sku-1", version=9, product=FIELDS)
    plain = CatalogRow(line=2, product_id="sku-2", version=None, product=FIELDS)
    assert event_for(versioned, version=100, event_type="product.created").version == 9
    assert event_for(plain, version=100, event_type="product.created").version == 100
