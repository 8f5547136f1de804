"""Vector searches on the worker's own index (``RedisIndex.index_name``): KNN, vector ranges, and the
lowest admission threshold. Batches of queries go out as one pipeline (``transaction=False``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis

from simstream.core.index_admin import RedisIndex
from simstream.core.query_syntax import knn_query
from simstream.core.redis_client import command, redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import parse_search
from simstream.core.vector_types import KnnFilter, Neighbor, Vector, vector_blob


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
