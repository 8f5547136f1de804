"""Searches on the worker's own index (``RedisIndex.index_name``): KNN, and every indexed product id.
Batches of queries go out as one pipeline (``transaction=False``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import redis

from simstream.core.index_admin import RedisIndex
from simstream.core.query_syntax import knn_query
from simstream.core.redis_client import command, redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import parse_search, parse_search_keys
from simstream.core.vector_types import KnnFilter, Neighbor, Vector, vector_blob

ID_SLACK: Final = 1_000  # ids asked for beyond the count, for products written meanwhile


class RedisVectorQueries:
    def __init__(self, client: redis.Redis, keys: RedisKeys, index: RedisIndex) -> None:
        self._client = client
        self.keys = keys
        self._index = index

    def knn(
        self, vector: Vector, k: int, *, exclude_id: str | None = None, flt: KnnFilter | None = None
    ) -> list[Neighbor]:
        """The ``k`` nearest products by cosine similarity, best first; ``exclude_id`` left out."""
        key = exclude_id if exclude_id is not None else ""
        return self._knn_pipeline([(key, vector, flt)], k, exclude_self=exclude_id is not None)[0]

    def knn_many(
        self,
        queries: Sequence[tuple[str, Vector]],
        k: int,
        *,
        flt: KnnFilter | None = None,
        filters: Mapping[str, KnnFilter] | None = None,
    ) -> dict[str, list[Neighbor]]:
        """KNN for many (product_id, vector) pairs in one pipeline, each excluding its own product.

        ``filters`` gives a per-product filter (for example its own category); ``flt`` applies to the rest.
        """
        jobs = [(pid, vec, (filters or {}).get(pid, flt)) for pid, vec in queries]
        results = self._knn_pipeline(jobs, k, exclude_self=True)
        return {pid: neighbors for (pid, _, _), neighbors in zip(jobs, results, strict=True)}

    def _knn_pipeline(
        self, jobs: Sequence[tuple[str, Vector, KnnFilter | None]], k: int, *, exclude_self: bool
    ) -> list[list[Neighbor]]:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if not jobs:
            return []
        index_name = self._index.index_name
        fetch = k + 1 if exclude_self else k  # the product itself is usually its own nearest neighbour
        pipe = self._client.pipeline(transaction=False)
        for _, vector, flt in jobs:
            command(pipe,
                "FT.SEARCH", index_name, knn_query(fetch, flt),
                "PARAMS", 2, "vec", vector_blob(vector, self._index.dim),
                "SORTBY", "dist", "RETURN", 1, "dist", "LIMIT", 0, fetch, "DIALECT", 2,
            )  # fmt: skip
        with redis_errors(f"run {len(jobs)} KNN quer(ies) on {index_name!r}"):
            replies = pipe.execute()
        results = []
        for (own_id, _, _), reply in zip(jobs, replies, strict=True):
            neighbors = [
                Neighbor(self.keys.product_id_of(hit.key), 1.0 - float(hit.fields["dist"]))
                for hit in parse_search(reply).hits
            ]
            if exclude_self:
                neighbors = [n for n in neighbors if n.product_id != own_id]
            results.append(neighbors[:k])
        return results

    def indexed_product_ids(self) -> list[str]:
        """Every product the index holds, from one FT.SEARCH (one consistent view): SCAN would need a
        keyspace-wide command that the worker's ACL does not grant, and pages of a wildcard query are
        not in a stable order (an offset can skip or repeat ids). Catalogs past the server's
        MAXSEARCHRESULTS (1,000,000 by default) need it raised; Redis's refusal says so."""
        index_name = self._index.index_name
        with redis_errors(f"count the products of {index_name!r}"):
            counted = command(self._client, "FT.SEARCH", index_name, "*", "NOCONTENT", "LIMIT", 0, 0)
        wanted = parse_search_keys(counted).total + ID_SLACK  # room for products written since the count
        while True:
            with redis_errors(f"list the {wanted} product ids of {index_name!r}"):
                reply = command(
                    self._client, "FT.SEARCH", index_name, "*", "NOCONTENT", "LIMIT", 0, wanted, "DIALECT", 2
                )
            hits = parse_search_keys(reply).hits
            if len(hits) < wanted:
                return [self.keys.product_id_of(hit.key) for hit in hits]
            wanted = 2 * wanted + 1
