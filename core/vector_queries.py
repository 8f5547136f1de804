"""Vector searches on the worker's own index (``RedisIndex.index_name``): KNN, vector ranges, and the
lowest admission threshold. Batches of queries go out as one pipeline (``transaction=False``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis

from simstream.core.index_admin import RedisIndex
from simstream.core.query_syntax import FULL_POOLS_QUERY, knn_query, range_query
from simstream.core.redis_client import command, redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import parse_search
from simstream.core.vector_types import RANGE_RESULTS_CAP, KnnFilter, Neighbor, RangeQuery, Vector, vector_blob


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

    def range_many(self, queries: Sequence[RangeQuery]) -> list[list[Neighbor]]:
        """Vector range searches in one pipeline, each answer best first (its own product left out)."""
        if not queries:
            return []
        index_name = self._index.index_name
        pipe = self._client.pipeline(transaction=False)
        for query in queries:
            radius = min(2.0, max(0.0, 1.0 - query.min_score))  # COSINE distance = 1 - cosine, in [0, 2]
            command(pipe,
                "FT.SEARCH", index_name, range_query(query.flt),
                "PARAMS", 4, "radius", repr(radius), "vec", vector_blob(query.vector, self._index.dim),
                "SORTBY", "dist", "RETURN", 1, "dist", "LIMIT", 0, RANGE_RESULTS_CAP, "DIALECT", 2,
            )  # fmt: skip
        with redis_errors(f"run {len(queries)} vector range quer(ies) on {index_name!r}"):
            replies = pipe.execute()
        return [
            [
                Neighbor(pid, 1.0 - float(hit.fields["dist"]))
                for hit in parse_search(reply).hits
                if (pid := self.keys.product_id_of(hit.key)) != query.product_id
            ]
            for query, reply in zip(queries, replies, strict=True)
        ]

    def lowest_admission(self) -> float | None:
        """The lowest admission threshold of a full pool (``kth`` above -1), None when there is none."""
        index_name = self._index.index_name
        with redis_errors(f"read the lowest admission threshold on {index_name!r}"):
            reply = command(self._client,
                "FT.SEARCH", index_name, FULL_POOLS_QUERY,
                "SORTBY", "kth", "ASC", "RETURN", 1, "kth", "LIMIT", 0, 1, "DIALECT", 2,
            )  # fmt: skip
        hits = parse_search(reply).hits
        return float(hits[0].fields["kth"]) if hits else None
