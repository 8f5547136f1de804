"""The committed JSON Schema files are the current contracts, and they say what the models enforce."""

from __future__ import annotations

import json
from pathlib import Path

from simstream.schemas.json_schema import BUNDLED_SCHEMA_DIR, export_json_schemas

REPO_SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "json"


def test_committed_schemas_are_current(tmp_path: Path) -> None:
    written = export_json_schemas(tmp_path / "out")

    assert sorted(path.name for path in written) == ["product.v1.json", "similar-items.v1.json"]
    for path in written:
        committed = REPO_SCHEMA_DIR / path.name
        assert committed.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"{committed} is stale: regenerate with `simstream schema export schemas/json`"
        )


def test_the_installed_package_ships_the_schemas() -> None:
    assert sorted(path.name for path in BUNDLED_SCHEMA_DIR.glob("*.json")) == [
        "product.v1.json",
        "similar-items.v1.json",
    ]


def test_export_is_stable_and_ends_with_a_newline(tmp_path: Path) -> None:
    first = [path.read_bytes() for path in export_json_schemas(tmp_path / "a")]
    second = [path.read_bytes() for path in export_json_schemas(tmp_path / "b")]

    assert first == second
    assert all(text.endswith(b"}\n") for text in first)


def test_product_schema_states_the_wire_rules(tmp_path: Path) -> None:
    (product_path, _) = export_json_schemas(tmp_path)
    schema = json.loads(product_path.read_text(encoding="utf-8"))

    assert schema["$id"] == "product.v1"
    assert schema["required"][0] == "schema"
    assert schema["properties"]["schema"]["const"] == "product.v1"
    assert schema["additionalProperties"] is False
    assert schema["properties"]["version"] == {
        "maximum": 2**53 - 1,
        "minimum": 0,
        "title": "Version",
        "type": "integer",
    }
    conditional = schema["allOf"][0]
    assert conditional["if"]["properties"]["type"]["const"] == "product.deleted"
    assert conditional["else"]["required"] == ["product"]
    product = schema["$defs"]["Product"]
    assert product["required"] == ["title"]
    assert product["properties"]["price"]["anyOf"][0]["minimum"] == 0
