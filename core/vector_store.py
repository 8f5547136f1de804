"""Products and their embeddings in Redis, searched with RediSearch KNN (design.md §3).

``RedisVectorStore`` is the one object callers hold; it composes three parts with one job each:

- ``.index`` (core/index_admin): the RediSearch index and its alias, created, checked, promoted;
- ``.products`` (core/product_store): the version-fenced writes and the per-product reads;
- ``.queries`` (core/vector_queries): KNN and vector-range searches on the worker's own index.

The query text itself is built in core/query_syntax; the shared values live in core/vector_types and
are re-exported here, where callers import them from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import redis

from simstream.core.index_admin import RedisIndex
from simstream.core.product_store import RedisProductStore
from simstream.core.query_syntax import escape_tag, knn_query, range_query
from simstream.core.redis_client import make_redis_client
from simstream.core.redis_keys import RedisKeys
from simstream.core.vector_queries import RedisVectorQueries
from simstream.core.vector_types import (
    MAX_VERSION,
    METADATA_FIELDS,
    RANGE_RESULTS_CAP,
    TAG_SEPARATOR,
    Algorithm,
    KnnFilter,
    Neighbor,
    ProductWrite,
    StoredState,
    UpsertResult,
    Vector,
)
from simstream.schemas.settings import Settings

__all__ = [
    "MAX_VERSION",
    "METADATA_FIELDS",
    "RANGE_RESULTS_CAP",
    "TAG_SEPARATOR",
    "Algorithm",
    "KnnFilter",
    "Neighbor",
    "ProductWrite",
    "RedisVectorStore",
    "StoredState",
    "UpsertResult",
    "Vector",
    "VectorStore",
    "escape_tag",
    "knn_query",
    "range_query",
]


class VectorStore(Protocol):
    @property
    def index_name(self) -> str: ...

    def ensure_index(self, dim: int, model_id: str) -> None: ...
    def states(self, ids: Sequence[str]) -> dict[str, StoredState | None]: ...
    def upsert(self, writes: Sequence[ProductWrite]) -> list[bool]: ...
    def upsert_results(self, writes: Sequence[ProductWrite]) -> list[UpsertResult]: ...
    def delete(self, items: Sequence[tuple[str, int]]) -> list[bool]: ...
    def knn(
        self, vector: Vector, k: int, *, exclude_id: str | None = None, flt: KnnFilter | None = None
    ) -> list[Neighbor]: ...
    def knn_many(
        self,
        queries: Sequence[tuple[str, Vector]],
        k: int,
        *,
        flt: KnnFilter | None = None,
        filters: Mapping[str, KnnFilter] | None = None,
    ) -> dict[str, list[Neighbor]]: ...
    def embeddings(self, ids: Sequence[str]) -> dict[str, Vector]: ...
    def catalog_stamp(self) -> int: ...
    def metadata(self, ids: Sequence[str]) -> dict[str, dict[str, str]]: ...
    def texts(self, ids: Sequence[str]) -> dict[str, str]: ...
    def all_product_ids(self) -> list[str]: ...
    def indexed_product_ids(self) -> list[str]: ...
    def count(self) -> int: ...


class RedisVectorStore:
    """The index, the product hashes and the vector queries of one deployment, behind one object.

    Every method delegates to ``.index``, ``.products`` or ``.queries``; their docstrings say what it does.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        index_name: str,
        index_alias: str,
        hnsw_m: int,
        hnsw_ef_construction: int,
        hnsw_ef_runtime: int,
        algorithm: Algorithm = "HNSW",
        catalog_prefix: str | None = None,
    ) -> None:
        keys = RedisKeys(prefix, catalog_prefix)
        self.index = RedisIndex(
            client,
            keys,
            index_name=index_name,
            index_alias=index_alias,
            hnsw_m=hnsw_m,
            hnsw_ef_construction=hnsw_ef_construction,
            hnsw_ef_runtime=hnsw_ef_runtime,
            algorithm=algorithm,
        )
        self.products = RedisProductStore(client, keys, self.index)
        self.queries = RedisVectorQueries(client, keys, self.index)

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis | None = None) -> RedisVectorStore:
        return cls(
            client if client is not None else make_redis_client(settings),
            prefix=settings.redis_prefix,
            index_name=settings.index_name,
            index_alias=settings.index_alias,
            hnsw_m=settings.hnsw_m,
            hnsw_ef_construction=settings.hnsw_ef_construction,
            hnsw_ef_runtime=settings.hnsw_ef_runtime,
            algorithm=settings.vector_algorithm,
            catalog_prefix=settings.redis_catalog_prefix,
        )

    @property
    def keys(self) -> RedisKeys:
        return self.index.keys

    @property
    def index_name(self) -> str:
        return self.index.index_name

    @property
    def index_alias(self) -> str:
        return self.index.index_alias

    # --- index (core/index_admin) --------------------------------------------------------------

    def ensure_index(self, dim: int, model_id: str) -> None:
        self.index.ensure_index(dim, model_id)

    def alias_target(self) -> str | None:
        return self.index.alias_target()

    def promote_alias(self) -> None:
        self.index.promote_alias()

    def drop_index(self, *, delete_documents: bool = False) -> None:
        self.index.drop_index(delete_documents=delete_documents)

    def wait_indexed(self, timeout_s: float, poll_s: float = 0.05) -> bool:
        return self.index.wait_indexed(timeout_s, poll_s)

    def count(self) -> int:
        return self.index.count()

    # --- writes and per-product reads (core/product_store) -------------------------------------

    def upsert_results(self, writes: Sequence[ProductWrite]) -> list[UpsertResult]:
        return self.products.upsert_results(writes)

    def upsert(self, writes: Sequence[ProductWrite]) -> list[bool]:
        return self.products.upsert(writes)

    def delete(self, items: Sequence[tuple[str, int]]) -> list[bool]:
        return self.products.delete(items)

    def states(self, ids: Sequence[str]) -> dict[str, StoredState | None]:
        return self.products.states(ids)

    def embeddings(self, ids: Sequence[str]) -> dict[str, Vector]:
        return self.products.embeddings(ids)

    def catalog_stamp(self) -> int:
        return self.products.catalog_stamp()

    def texts(self, ids: Sequence[str]) -> dict[str, str]:
        return self.products.texts(ids)

    def metadata(self, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        return self.products.metadata(ids)

    def all_product_ids(self) -> list[str]:
        return self.products.all_product_ids()

    def indexed_product_ids(self) -> list[str]:
        return self.queries.indexed_product_ids()

    # --- vector queries (core/vector_queries) --------------------------------------------------

    def knn(
        self, vector: Vector, k: int, *, exclude_id: str | None = None, flt: KnnFilter | None = None
    ) -> list[Neighbor]:
        return self.queries.knn(vector, k, exclude_id=exclude_id, flt=flt)

    def knn_many(
        self,
        queries: Sequence[tuple[str, Vector]],
        k: int,
        *,
        flt: KnnFilter | None = None,
        filters: Mapping[str, KnnFilter] | None = None,
    ) -> dict[str, list[Neighbor]]:
        return self.queries.knn_many(queries, k, flt=flt, filters=filters)
