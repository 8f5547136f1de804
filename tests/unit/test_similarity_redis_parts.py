"""The pure parts of the Redis store (query text and escaping: test_query_syntax.py): RESP2/RESP3 reply
parsing, key layout, and the similar-items JSON whose list version the write script fills in."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from simstream.core.errors import StoreUnavailableError
from simstream.core.list_store import ListWrite, decode_list, list_payload
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import info_attributes, parse_info, parse_search
from simstream.core.vector_store import Neighbor, RedisVectorStore
from simstream.schemas.codec import decode_similar_items


def test_parse_search_reads_resp2_and_resp3_alike() -> None:
    resp2 = [2, b"p:1", [b"dist", b"0.25"], b"p:2", [b"dist", b"0.5"]]
    resp3 = {
        b"attributes": [],
        b"total_results": 2,
        b"format": b"STRING",
        b"results": [
            {b"id": b"p:1", b"extra_attributes": {b"dist": b"0.25"}, b"values": []},
            {b"id": b"p:2", b"extra_attributes": {b"dist": b"0.5"}, b"values": []},
        ],
        b"warning": [],
    }
    for reply in (resp2, resp3):
        parsed = parse_search(reply)
        assert parsed.total == 2
        assert [(hit.key, hit.fields) for hit in parsed.hits] == [
            ("p:1", {"dist": "0.25"}),
            ("p:2", {"dist": "0.5"}),
        ]
    assert parse_search([7]).total == 7
    assert parse_search({b"total_results": 0, b"results": []}).hits == []


def test_parse_info_reads_vector_dimension_from_both_protocols() -> None:
    resp2 = [
        b"index_name",
        b"i",
        b"attributes",
        [[b"identifier", b"embedding", b"type", b"VECTOR", b"dim", 8]],
    ]
    resp3 = {
        b"index_name": b"i",
        b"attributes": [{b"identifier": b"embedding", b"type": b"VECTOR", b"dim": 8}],
    }
    for reply in (resp2, resp3):
        info = parse_info(reply)
        assert info["index_name"] == b"i"
        assert info_attributes(info)[0]["dim"] == 8


def test_keys_share_the_prefix_and_round_trip_product_ids() -> None:
    keys = RedisKeys("shop:")
    assert keys.product("sku 1") == "shop:product:sku 1"
    assert keys.product_id_of(keys.product("sku:1")) == "sku:1"
    assert keys.version_fence("a") == "shop:ver:a"
    assert keys.similar("a") == "shop:similar:a"
    assert keys.rev("a") == keys.rev_prefix + "a" == "shop:rev:a"
    assert keys.index_meta("idx") == "shop:meta:index:idx"


@pytest.mark.parametrize("product_id", ["sku-1", 'tricky "list_version":0, id', "数码"])
def test_list_payload_is_valid_similar_items_json(product_id: str) -> None:
    write = ListWrite([Neighbor("n1", 0.91234567), Neighbor('also "list_version":0,', 0.5)], 17, "m@rev")
    payload = list_payload(
        product_id, write.items, write.source_version, write.model, 42, datetime(2026, 11, 29, 12, tzinfo=UTC)
    )
    record = decode_similar_items(payload)
    assert record.product_id == product_id
    assert record.list_version == 42
    assert record.source_version == 17
    assert record.model == "m@rev"
    assert [(i.product_id, i.score) for i in record.items] == [
        ("n1", 0.912346),
        ('also "list_version":0,', 0.5),
    ]
    assert decode_list(payload).items == (Neighbor("n1", 0.912346), Neighbor('also "list_version":0,', 0.5))


def test_unreachable_redis_is_a_retryable_store_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on: connect is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))
    store = RedisVectorStore(
        client,
        prefix="x:",
        index_name="i",
        index_alias="a",
        hnsw_m=16,
        hnsw_ef_construction=200,
        hnsw_ef_runtime=10,
    )
    with pytest.raises(StoreUnavailableError) as caught:
        store.states(["p1"])
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
