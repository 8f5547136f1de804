"""Model generations (core/generations): descriptors, names, the value batches compare."""

from __future__ import annotations

import pytest

from simstream.core.errors import StoreError
from simstream.core.generations import (
    Generation,
    Generations,
    GenerationsMoved,
    GenerationWatch,
    first_generation,
    new_generation,
    parse_value,
)
from simstream.core.redis_keys import RedisKeys
from simstream.schemas.settings import Settings

SETTINGS = Settings(redis_prefix="shop:", index_name="shop-idx-v1", model="all-MiniLM-L6-v2")


def test_the_first_generation_is_the_settings_model_index_and_prefix() -> None:
    first = first_generation(SETTINGS, "sentence-transformers/all-MiniLM-L6-v2@53aa51172d14", 384)
    assert (first.number, first.revision, first.index_name, first.catalog_prefix) == (
        1,
        "53aa51172d14",
        "shop-idx-v1",
        None,
    )
    chosen = first.settings(SETTINGS)
    assert chosen.model_revision == "53aa51172d14" and chosen.redis_catalog_prefix is None


def test_a_new_generation_gets_its_own_index_and_catalog_prefix() -> None:
    second = new_generation(SETTINGS, 2, "/models/int8", "abc", "int8@abc", 384)
    assert (second.index_name, second.catalog_prefix) == ("shop-idx-v2", "shop:g2:")
    unversioned = new_generation(SETTINGS.model_copy(update={"index_name": "catalog"}), 3, "m", "r", "m@r", 8)
    assert unversioned.index_name == "catalog-v3"
    keys = RedisKeys("shop:", second.catalog_prefix)
    # Product hashes and fences move; lists, pools and the rest stay where readers find them.
    assert keys.product("p1") == "shop:g2:product:p1" and keys.version_fence("p1") == "shop:g2:ver:p1"
    assert keys.product_prefix == "shop:g2:product:"
    assert keys.similar("p1") == "shop:similar:p1" and keys.list_meta("p1") == "shop:listmeta:p1"
    assert keys.rev("p1") == "shop:rev:p1" and keys.first_load == "shop:firstload"
    assert RedisKeys("shop:").product("p1") == "shop:product:p1"


def test_a_descriptor_round_trips_and_garbage_is_refused() -> None:
    second = new_generation(SETTINGS, 2, "/models/int8", "abc", "int8@abc", 384)
    assert Generation.decode(second.encode()) == second
    with pytest.raises(StoreError):
        Generation.decode(b'{"number": 2}')
    with pytest.raises(StoreError):
        Generation.decode(b"not json")


def test_the_value_names_live_then_shadow() -> None:
    first = first_generation(SETTINGS, "m@r", 384)
    second = new_generation(SETTINGS, 2, "n", "s", "n@s", 384)
    assert Generations(first).value == "1"
    assert Generations(first, second).value == "1,2"
    assert Generations(second, first).value == "2,1"
    assert parse_value("2,1") == (2, 1) and parse_value("3") == (3, None)
    for bad in ("", "a", "1,2,3", "1,"):
        with pytest.raises(StoreError):
            parse_value(bad)


def test_a_watch_raises_when_the_generations_moved() -> None:
    watch = GenerationWatch("shop:models", "1,2")
    watch.check("1,2")
    with pytest.raises(GenerationsMoved):
        watch.check("2,1")
    with pytest.raises(GenerationsMoved):
        watch.check(None)
    GenerationWatch("shop:models", None).check(None)  # no upgrade ever ran
