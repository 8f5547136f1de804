"""Storefront-style reads (`simstream similar`, `simstream search`) and the same-category policy,
on lists the real worker built."""

from __future__ import annotations

import orjson
import pytest
from support.streaming import RunningWorker, create_stream_topics, event, publish, settled, stream_settings, wait_for

from simstream.cli import main
from simstream.core.encoder import TransformerEncoder
from simstream.core.list_store import ListStore
from simstream.core.redis_client import make_redis_client
from simstream.core.vector_store import RedisVectorStore
from simstream.demo import sample_catalog
from simstream.producers.catalog import read_catalog
from simstream.schemas.settings import Settings
from simstream.verify import run_verify

pytestmark = pytest.mark.integration

NAMESPACE_FIELDS = ("kafka_bootstrap", "redis_url", "redis_prefix", "index_name", "index_alias", "top_k")


def categorised_products() -> list[tuple[str, dict[str, object]]]:
    """40 real Buy offers; the category is the shop's: switches/routers are 'network', the rest 'other'."""
    _, buy = sample_catalog()
    products = []
    for row in list(read_catalog(buy, id_prefix="buy-"))[:40]:
        words = row.product["title"].lower()
        category = (
            "network & wifi" if any(w in words for w in ("switch", "router", "ethernet", "wireless")) else "other"
        )
        products.append((row.product_id, {**row.product, "category": category}))
    return products


def test_same_category_lists_cli_similar_and_filtered_search(
    kafka_bootstrap: str,
    redis_url: str,
    unique_name: str,
    default_encoder: TransformerEncoder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings: Settings = stream_settings(
        kafka_bootstrap, redis_url, unique_name, top_k=5, same_category_only=True, vector_algorithm="FLAT"
    )
    create_stream_topics(settings)
    products = categorised_products()
    category_of = {pid: product["category"] for pid, product in products}
    assert set(category_of.values()) == {"network & wifi", "other"}
    with RunningWorker(settings, default_encoder) as running:
        publish(settings, [event(pid, 1, product) for pid, product in products])
        wait_for(lambda: settled(settings), 300, "the worker to drain")
        assert running.alive()

    lists = ListStore.from_settings(settings, make_redis_client(settings)).read_lists(list(category_of))
    assert len(lists) == len(products)
    for pid, stored in lists.items():
        assert all(category_of[n.product_id] == category_of[pid] for n in stored.items), pid
    report = run_verify(settings)
    assert report.overlap_at_k_min == 1.0 and report.output_mismatches == 0

    for field in NAMESPACE_FIELDS:
        monkeypatch.setenv(f"SIMSTREAM_{field.upper()}", str(getattr(settings, field)))
    network_id = next(pid for pid, category in category_of.items() if category == "network & wifi")
    assert main(["similar", network_id]) == 0
    shown = capsys.readouterr().out
    assert f"list_version={lists[network_id].list_version}" in shown
    assert lists[network_id].items[0].product_id in shown

    assert main(["search", "ethernet switch", "-k", "3", "--category", "network & wifi", "--json"]) == 0
    hits = orjson.loads(capsys.readouterr().out)
    assert len(hits) == 3 and all(category_of[h["product_id"]] == "network & wifi" for h in hits)
    store = RedisVectorStore.from_settings(settings, make_redis_client(settings))
    cheapest = min(float(store.metadata([pid])[pid].get("price") or 1e9) for pid in category_of)
    assert main(["search", "ethernet switch", "--max-price", str(cheapest), "--json"]) == 0
    priced = orjson.loads(capsys.readouterr().out)
    assert priced and all(float(h["price"]) <= cheapest for h in priced)
