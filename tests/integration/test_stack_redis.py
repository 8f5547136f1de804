"""The real Redis of the stack: RediSearch HNSW vectors with TAG and NUMERIC pre-filters."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import redis
from redis.commands.search.field import NumericField, TagField, VectorField
from redis.commands.search.index_definition import IndexDefinition, IndexType
from redis.commands.search.query import Query

pytestmark = pytest.mark.integration

DIM = 8


def _unit(*components: float) -> bytes:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(components)] = components
    return (vector / np.linalg.norm(vector)).astype(np.float32).tobytes()


QUERY = _unit(1.0)
# name -> (category, price, vector). Cosine to QUERY falls in the order of the list.
PRODUCTS = {
    "other-category": ("y", 10.0, _unit(1.0, 0.05)),  # nearest of all, but filtered out by category
    "too-expensive": ("x", 500.0, _unit(1.0, 0.1)),  # next nearest, filtered out by price
    "best": ("x", 50.0, _unit(1.0, 0.4)),
    "second": ("x", 20.0, _unit(1.0, 1.0)),
    "third": ("x", 99.0, _unit(1.0, 2.0)),
    "far": ("x", 1.0, _unit(-1.0, 1.0)),
}


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, protocol=2)
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def vector_index(client: redis.Redis, unique_name: str) -> Iterator[str]:
    prefix = f"{unique_name}:product:"
    client.ft(unique_name).create_index(
        [
            TagField("category"),
            NumericField("price"),
            VectorField("embedding", "HNSW", {"TYPE": "FLOAT32", "DIM": DIM, "DISTANCE_METRIC": "COSINE"}),
        ],
        definition=IndexDefinition(prefix=[prefix], index_type=IndexType.HASH),  # type: ignore[no-untyped-call]
    )
    for name, (category, price, vector) in PRODUCTS.items():
        client.hset(f"{prefix}{name}", mapping={"category": category, "price": price, "embedding": vector})
    try:
        yield unique_name
    finally:
        client.ft(unique_name).dropindex(delete_documents=True)


def _knn(client: redis.Redis, index: str, query: str) -> list[str]:
    prepared = Query(query).sort_by("distance").return_fields("distance").paging(0, 10).dialect(2)
    result = client.ft(index).search(prepared, query_params={"v": QUERY})
    return [document.id.rsplit(":", 1)[-1] for document in result.docs]


def test_filtered_knn_returns_the_nearest_matching_products(client: redis.Redis, vector_index: str) -> None:
    filtered = _knn(client, vector_index, "(@category:{x} @price:[0 100])=>[KNN 3 @embedding $v AS distance]")
    assert filtered == ["best", "second", "third"]


def test_unfiltered_knn_finds_the_products_the_filter_excludes(client: redis.Redis, vector_index: str) -> None:
    unfiltered = _knn(client, vector_index, "*=>[KNN 3 @embedding $v AS distance]")
    assert unfiltered == ["other-category", "too-expensive", "best"]
