"""Catalog files -> product rows: the Abt-Buy CSVs as they are, column mappings, JSON Lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from simstream.demo import sample_catalog
from simstream.producers.catalog import CatalogError, parse_mapping, parse_price, read_catalog
from simstream.producers.publish import event_for


def test_abt_csv_windows_1252_reads_as_is_with_prices_parsed() -> None:
    abt, _ = sample_catalog()
    rows = list(read_catalog(abt, id_prefix="abt-"))
    assert len(rows) == 1081
    first = rows[0]
    assert first.product_id == "abt-552"
    assert first.product["title"] == "Sony Turntable - PSLX350H"
    assert "price" not in first.product  # empty in the file: absent, not 0
    assert rows[1].product["price"] == 399.0
    assert any("®" in row.product.get("description", "") for row in rows)  # cp1252 decoded


def test_buy_csv_maps_manufacturer_to_brand_and_every_row_makes_a_valid_event() -> None:
    _, buy = sample_catalog()
    rows = list(read_catalog(buy, id_prefix="buy-"))
    assert len(rows) == 1092
    assert rows[0].product["brand"] == "LINKSYS"
    for row in rows:
        event = event_for(row, version=7, event_type="product.created")
        assert event.product_id == row.product_id and event.version == 7


@pytest.mark.parametrize(
    ("raw", "expected"), [("$1,299.00", 1299.0), ("", None), ("n/a", None), (12, 12.0), (None, None)]
)
def test_parse_price(raw: object, expected: float | None) -> None:
    assert parse_price(raw) == expected


def test_custom_mapping_and_jsonl(tmp_path: Path) -> None:
    csv_file = tmp_path / "shop.csv"
    csv_file.write_text("sku,label,maker,cost\nA1,Red kettle,Acme,$20\n", encoding="utf-8")
    (row,) = read_catalog(csv_file, mapping=parse_mapping("product_id=sku,title=label,brand=maker,price=cost"))
    assert (row.product_id, row.product) == ("A1", {"title": "Red kettle", "brand": "Acme", "price": 20.0})

    jsonl = tmp_path / "shop.jsonl"
    jsonl.write_text(
        '{"product_id": "x", "version": 3, "product": {"title": "Blue kettle"}}\n'
        "\n"
        '{"product_id": "y", "title": "Mug"}\n'
    )
    rows = list(read_catalog(jsonl))
    assert [(r.product_id, r.version, r.product) for r in rows] == [
        ("x", 3, {"title": "Blue kettle"}),
        ("y", None, {"title": "Mug"}),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [("{broken\n", "line 1: invalid JSON"), ('{"title": "no id"}\n', "line 1: no product id"), ("[1]\n", "object")],
)
def test_bad_jsonl_lines_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(CatalogError, match=message):
        list(read_catalog(path))


def test_bad_mapping_is_rejected() -> None:
    with pytest.raises(CatalogError, match="field=column"):
        parse_mapping("title")
