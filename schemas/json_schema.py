"""Export the wire contracts as JSON Schema files (committed in ``schemas/json/``).

The output is byte-stable (sorted keys, fixed indentation, trailing newline) so that a unit test can
regenerate it and compare, and a contract change shows up as a reviewable diff.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from simstream.schemas.events import PRODUCT_SCHEMA, ProductEvent
from simstream.schemas.similar_items import SIMILAR_ITEMS_SCHEMA, SimilarItems

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
CONTRACTS: Final[dict[str, type[BaseModel]]] = {
    PRODUCT_SCHEMA: ProductEvent,
    SIMILAR_ITEMS_SCHEMA: SimilarItems,
}
# Shipped inside the package (package-data ``json/*.json``).
BUNDLED_SCHEMA_DIR: Final = Path(__file__).resolve().parent / "json"


def json_schema_text(schema_name: str) -> str:
    """The JSON Schema document of one contract, exactly as it is written to disk."""
    model = CONTRACTS[schema_name]
    document: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_name,
        **model.model_json_schema(by_alias=True, mode="validation"),
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_json_schemas(directory: Path) -> list[Path]:
    """Write ``<schema>.json`` for every contract into ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for schema_name in CONTRACTS:
        path = directory / f"{schema_name}.json"
        path.write_text(json_schema_text(schema_name), encoding="utf-8")
        written.append(path)
    return written
