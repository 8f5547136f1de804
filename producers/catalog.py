"""Catalog files -> product rows: JSON Lines, or CSV with a column mapping (Abt-Buy CSVs as they are)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from simstream.core.text import read_text_file

CatalogFormat = Literal["jsonl", "csv"]

# CSV column -> product field. Aliases cover the Abt-Buy headers (name, manufacturer) without flags.
DEFAULT_CSV_MAPPING: Mapping[str, str] = {
    "id": "product_id",
    "product_id": "product_id",
    "sku": "product_id",
    "name": "title",
    "title": "title",
    "description": "description",
    "manufacturer": "brand",
    "brand": "brand",
    "category": "category",
    "price": "price",
    "currency": "currency",
    "version": "version",
}
_PRICE_NOISE = re.compile(r"[^\d.\-]")


class CatalogError(ValueError):
    """A catalog row that cannot become a product event (its line number is in the message)."""


@dataclass(frozen=True, slots=True)
class CatalogRow:
    line: int
    product_id: str
    product: dict[str, Any]
    version: int | None


def parse_price(raw: object) -> float | None:
    """'$1,299.00' -> 1299.0; empty or unparsable -> None (real catalogs have both)."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw)
    cleaned = _PRICE_NOISE.sub("", str(raw))
    try:
        return float(cleaned) if cleaned else None
    except ValueError:
        return None


def parse_mapping(spec: str | None) -> dict[str, str]:
    """'title=name,brand=manufacturer' (field=column) -> {column: field}, layered on the defaults."""
    mapping = dict(DEFAULT_CSV_MAPPING)
    if not spec:
        return mapping
    for pair in spec.split(","):
        field, sep, column = pair.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise CatalogError(f"bad column mapping {pair!r}: expected field=column")
        mapping = {col: f for col, f in mapping.items() if f != field.strip()}
        mapping[column.strip()] = field.strip()
    return mapping


def detect_format(path: Path) -> CatalogFormat:
    return "jsonl" if path.suffix.lower() in {".jsonl", ".ndjson", ".json"} else "csv"


def read_catalog(
    path: Path,
    *,
    fmt: CatalogFormat | None = None,
    mapping: Mapping[str, str] | None = None,
    id_prefix: str = "",
) -> Iterator[CatalogRow]:
    text = read_text_file(path)
    if (fmt or detect_format(path)) == "jsonl":
        yield from _read_jsonl(text, id_prefix)
    else:
        yield from _read_csv(text, mapping or DEFAULT_CSV_MAPPING, id_prefix)


def _read_csv(text: str, mapping: Mapping[str, str], id_prefix: str) -> Iterator[CatalogRow]:
    reader = csv.DictReader(io.StringIO(text))
    for line, raw in enumerate(reader, start=2):
        fields: dict[str, Any] = {}
        for column, value in raw.items():
            field = mapping.get((column or "").strip().lower()) or mapping.get(column or "")
            if field and value not in (None, ""):
                fields[field] = value.strip() if isinstance(value, str) else value
        yield _row(line, fields, id_prefix)


def _read_jsonl(text: str, id_prefix: str) -> Iterator[CatalogRow]:
    for line, raw_line in enumerate(text.splitlines(), start=1):
        if not raw_line.strip():
            continue
        try:
            obj = orjson.loads(raw_line)
        except orjson.JSONDecodeError as exc:
            raise CatalogError(f"line {line}: invalid JSON ({exc})") from exc
        if not isinstance(obj, dict):
            raise CatalogError(f"line {line}: expected a JSON object")
        # Either {"product_id":..., "product": {...}} or a flat product with its id.
        fields = dict(obj.get("product") or {k: v for k, v in obj.items() if k != "version"})
        fields["product_id"] = obj.get("product_id", fields.get("product_id"))
        if "version" in obj:
            fields["version"] = obj["version"]
        yield _row(line, fields, id_prefix)


def _row(line: int, fields: dict[str, Any], id_prefix: str) -> CatalogRow:
    raw_id = fields.pop("product_id", None)
    if raw_id is None or not str(raw_id).strip():
        raise CatalogError(f"line {line}: no product id")
    raw_version = fields.pop("version", None)
    try:
        version = int(raw_version) if raw_version is not None else None
    except ValueError as exc:
        raise CatalogError(f"line {line}: version {raw_version!r} is not an integer") from exc
    if "price" in fields:
        fields["price"] = parse_price(fields["price"])
        if fields["price"] is None:
            del fields["price"]
    return CatalogRow(line=line, product_id=f"{id_prefix}{str(raw_id).strip()}", product=fields, version=version)
