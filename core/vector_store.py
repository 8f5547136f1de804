"""Products and their embeddings in Redis, searched with RediSearch KNN (design.md §3).

Writes are version-fenced by Lua scripts (``redis_scripts``): a write applies only when its version is
greater than every version seen for the product, deletes included; older or equal versions change
nothing. Batches of writes and queries go out as pipelines (``transaction=False``): one round trip
(plus redis-py's SCRIPT EXISTS check of the scripts).

The worker queries its own index (``index_name``): its vectors come from its model. The alias
(``index_alias``) is what other readers use; ``promote_alias`` points it at this index once a new
index built beside the old one is ready.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import redis

from simstream.core.errors import EmbeddingRequiredError, IndexMismatchError, StoreError
from simstream.core.redis_client import command, make_redis_client, redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import info_attributes, parse_info, parse_search, text
from simstream.core.redis_scripts import (
    DELETE_PRODUCT,
    UPSERT_APPLIED,
    UPSERT_NEEDS_EMBEDDING,
    UPSERT_PRODUCT,
    UPSERT_STALE,
)
from simstream.schemas.settings import Settings

Vector = npt.NDArray[np.float32]
Algorithm = Literal["HNSW", "FLAT"]

# Lua compares versions as doubles: integers beyond 2**53 would compare wrongly.
MAX_VERSION = 2**53
# TAG values are split on this separator; Abt-Buy categories hold commas, so use a control character.
TAG_SEPARATOR = "\x1f"
# Results of one vector range query at most (RediSearch's own default bound is 1,000,000).
RANGE_RESULTS_CAP = 100_000
# Fields returned by ``metadata`` (what the CLI shows next to a neighbour).
METADATA_FIELDS = ("title", "brand", "category", "price")


@dataclass(frozen=True, slots=True)
class ProductWrite:
    product_id: str
    version: int
    content_hash: str
    model: str
    title: str
    brand: str
    category: str
    price: float | None
    updated_at: float
    embedding: Vector | None  # None => metadata-only update that keeps the stored embedding
    text: str = ""  # the embedded text, kept for the hybrid score's lexical evidence (core/hybrid)


@dataclass(frozen=True, slots=True)
class StoredState:
    version: int
    content_hash: str | None
    exists: bool  # False => deleted (the fence remembers the delete's version)
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Neighbor:
    product_id: str
    score: float  # cosine similarity = 1 - COSINE distance


@dataclass(frozen=True, slots=True)
class KnnFilter:
    category: str | None = None
    brand: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    # Only products whose admission threshold (``kth``) lies in [min_kth, max_kth]: the
    # reverse-neighbour search of core/refresh.
    min_kth: float | None = None
    max_kth: float | None = None


@dataclass(frozen=True, slots=True)
class RangeQuery:
    """Every product (but ``product_id``) whose cosine with ``vector`` is at least ``min_score``."""

    product_id: str
    vector: Vector
    min_score: float
    flt: KnnFilter | None = None


class UpsertResult(enum.Enum):
    APPLIED = UPSERT_APPLIED
    STALE = UPSERT_STALE  # older or equal version: nothing changed
    NEEDS_EMBEDDING = UPSERT_NEEDS_EMBEDDING  # metadata-only write, but the stored embedding doesn't match


class VectorStore(Protocol):
    index_name: str

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
    def versioned_embeddings(self, ids: Sequence[str]) -> dict[str, tuple[Vector, int]]: ...
    def metadata(self, ids: Sequence[str]) -> dict[str, dict[str, str]]: ...
    def texts(self, ids: Sequence[str]) -> dict[str, str]: ...
    def admission_thresholds(self, ids: Sequence[str]) -> dict[str, float]: ...
    def range_many(self, queries: Sequence[RangeQuery]) -> list[list[Neighbor]]: ...
    def lowest_admission(self) -> float | None: ...
    def all_product_ids(self) -> list[str]: ...
    def count(self) -> int: ...


def escape_tag(value: str) -> str:
    """Escape a TAG value for a query: every ASCII character that is not a letter or digit gets a
    backslash. The query parser escapes bytes, so non-ASCII characters (``®``, CJK) stay as they are."""
    return "".join("\\" + ch if ch.isascii() and not ch.isalnum() else ch for ch in value)


def _escape_glob(value: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in value)


def _number(value: float | None, unbounded: str) -> str:
    return unbounded if value is None else repr(float(value))


def knn_query(k: int, flt: KnnFilter | None) -> str:
    """The DIALECT 2 query: optional TAG/NUMERIC pre-filter, then KNN on ``$vec`` yielding ``dist``."""
    clauses = _filter_clauses(flt)
    prefilter = f"({' '.join(clauses)})" if clauses else "*"
    return f"{prefilter}=>[KNN {k} @embedding $vec AS dist]"


def range_query(flt: KnnFilter | None) -> str:
    """The DIALECT 2 query: the filter's clauses and a vector range of ``$radius`` around ``$vec``."""
    clauses = [*_filter_clauses(flt), "@embedding:[VECTOR_RANGE $radius $vec]=>{$YIELD_DISTANCE_AS: dist}"]
    return " ".join(clauses)


def _filter_clauses(flt: KnnFilter | None) -> list[str]:
    clauses: list[str] = []
    if flt is not None:
        # An empty TAG value cannot be queried (and means "unknown"): it does not restrict.
        if flt.category and flt.category.strip():
            clauses.append(f"@category:{{{escape_tag(flt.category.strip())}}}")
        if flt.brand and flt.brand.strip():
            clauses.append(f"@brand:{{{escape_tag(flt.brand.strip())}}}")
        if flt.min_price is not None or flt.max_price is not None:
            low, high = _number(flt.min_price, "-inf"), _number(flt.max_price, "+inf")
            clauses.append(f"@price:[{low} {high}]")
        if flt.min_kth is not None or flt.max_kth is not None:
            low, high = _number(flt.min_kth, "-inf"), _number(flt.max_kth, "+inf")
            clauses.append(f"@kth:[{low} {high}]")
    return clauses


class RedisVectorStore:
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
    ) -> None:
        self._client = client
        self.keys = RedisKeys(prefix)
        self.index_name = index_name
        self.index_alias = index_alias
        self._hnsw_m = hnsw_m
        self._hnsw_ef_construction = hnsw_ef_construction
        self._hnsw_ef_runtime = hnsw_ef_runtime
        self._algorithm: Algorithm = algorithm
        self._dim: int | None = None
        self._upsert_script = client.register_script(UPSERT_PRODUCT)
        self._delete_script = client.register_script(DELETE_PRODUCT)

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
        )

    # --- index ---------------------------------------------------------------------------------

    def ensure_index(self, dim: int, model_id: str) -> None:
        """Create the index (and the alias, when it doesn't exist yet) or check the existing one.

        Raises IndexMismatchError when the index exists for another dimension or another model.
        """
        meta_key = self.keys.index_meta(self.index_name)
        with redis_errors(f"check index {self.index_name!r}"):
            info = self._info(self.index_name)
            meta = {text(k): text(v) for k, v in self._client.hgetall(meta_key).items()}
        if info is None:
            self._create_index(dim)
        else:
            stored_dim = int(meta["dim"]) if "dim" in meta else _vector_dim(info)
            stored_model = meta.get("model")
            if stored_dim != dim or (stored_model is not None and stored_model != model_id):
                raise IndexMismatchError(
                    f"index {self.index_name!r} holds dim={stored_dim} model={stored_model!r}, "
                    f"asked for dim={dim} model={model_id!r}. To change models, build a new index beside "
                    f"it: set a new SIMSTREAM_INDEX_NAME and SIMSTREAM_REDIS_PREFIX, backfill, then swap "
                    f"the alias {self.index_alias!r} (FT.ALIASUPDATE) to the new index."
                )
        with redis_errors(f"record index {self.index_name!r} metadata"):
            self._client.hset(meta_key, mapping={"dim": dim, "model": model_id, "algorithm": self._algorithm})
            if self.alias_target() is None:
                try:
                    command(self._client, "FT.ALIASADD", self.index_alias, self.index_name)
                except redis.exceptions.ResponseError as exc:
                    if "exists" not in str(exc).lower():  # another worker added it first: fine
                        raise
        self._dim = dim

    def _create_index(self, dim: int) -> None:
        if self._algorithm == "HNSW":
            vector_args: list[Any] = [
                "HNSW", 12, "TYPE", "FLOAT32", "DIM", dim, "DISTANCE_METRIC", "COSINE",
                "M", self._hnsw_m, "EF_CONSTRUCTION", self._hnsw_ef_construction,
                "EF_RUNTIME", self._hnsw_ef_runtime,
            ]  # fmt: skip
        else:
            vector_args = ["FLAT", 6, "TYPE", "FLOAT32", "DIM", dim, "DISTANCE_METRIC", "COSINE"]
        with redis_errors(f"create index {self.index_name!r}"):
            try:
                command(self._client,
                    "FT.CREATE", self.index_name, "ON", "HASH", "PREFIX", 1, self.keys.product_prefix,
                    "SCHEMA", "embedding", "VECTOR", *vector_args,
                    "title", "TEXT",
                    "brand", "TAG", "SEPARATOR", TAG_SEPARATOR,
                    "category", "TAG", "SEPARATOR", TAG_SEPARATOR,
                    "price", "NUMERIC", "SORTABLE",
                    "kth", "NUMERIC",
                )  # fmt: skip
            except redis.exceptions.ResponseError as exc:
                if "already exists" not in str(exc).lower():  # lost a creation race: checked below
                    raise
                info = self._info(self.index_name)
                if info is not None and _vector_dim(info) != dim:
                    raise IndexMismatchError(
                        f"index {self.index_name!r} was just created by another worker with "
                        f"dim={_vector_dim(info)}, asked for dim={dim}"
                    ) from exc

    def _info(self, name: str) -> dict[str, Any] | None:
        try:
            return parse_info(command(self._client, "FT.INFO", name))
        except redis.exceptions.ResponseError as exc:
            if "unknown" in str(exc).lower() or "no such index" in str(exc).lower():
                return None
            raise

    def alias_target(self) -> str | None:
        """The index the alias points at, or None when there is no alias."""
        with redis_errors(f"read alias {self.index_alias!r}"):
            info = self._info(self.index_alias)
        return None if info is None else text(info["index_name"])

    def promote_alias(self) -> None:
        """Point the alias at this store's index (FT.ALIASUPDATE): the zero-downtime model swap."""
        with redis_errors(f"point alias {self.index_alias!r} at {self.index_name!r}"):
            command(self._client, "FT.ALIASUPDATE", self.index_alias, self.index_name)

    def drop_index(self, *, delete_documents: bool = False) -> None:
        """Drop the index (and its metadata); product hashes stay unless ``delete_documents``."""
        with redis_errors(f"drop index {self.index_name!r}"):
            args = ["FT.DROPINDEX", self.index_name] + (["DD"] if delete_documents else [])
            command(self._client, *args)
            self._client.delete(self.keys.index_meta(self.index_name))

    def wait_indexed(self, timeout_s: float, poll_s: float = 0.05) -> bool:
        """Wait until the index has indexed every document (after creation over existing hashes or a
        restart); True when done within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            with redis_errors(f"read index {self.index_name!r} progress"):
                info = self._info(self.index_name)
            if info is None:
                raise StoreError(f"index {self.index_name!r} does not exist")
            if int(text(info.get("indexing", 0))) == 0 and float(text(info.get("percent_indexed", 1))) >= 1:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)

    # --- writes --------------------------------------------------------------------------------

    def upsert_results(self, writes: Sequence[ProductWrite]) -> list[UpsertResult]:
        """Version-fenced writes in one pipeline, one result per write in order."""
        if not writes:
            return []
        pipe = self._client.pipeline(transaction=False)
        for write in writes:
            keys, args = self._upsert_call(write)
            self._upsert_script(keys=keys, args=args, client=pipe)
        with redis_errors(f"upsert {len(writes)} product(s)"):
            replies = pipe.execute()
        return [UpsertResult(int(reply)) for reply in replies]

    def upsert(self, writes: Sequence[ProductWrite]) -> list[bool]:
        """Applied flags, in order. A metadata-only write that finds no matching stored embedding raises
        EmbeddingRequiredError (carrying every flag) after the batch's other writes went through."""
        results = self.upsert_results(writes)
        applied = [result is UpsertResult.APPLIED for result in results]
        missing = [
            write.product_id
            for write, result in zip(writes, results, strict=True)
            if result is UpsertResult.NEEDS_EMBEDDING
        ]
        if missing:
            raise EmbeddingRequiredError(missing, applied)
        return applied

    def delete(self, items: Sequence[tuple[str, int]]) -> list[bool]:
        """Version-fenced deletes in one pipeline; True where the delete applied."""
        if not items:
            return []
        pipe = self._client.pipeline(transaction=False)
        for product_id, version in items:
            _check_version(version)
            self._delete_script(
                keys=[
                    self.keys.product(product_id),
                    self.keys.version_fence(product_id),
                    self.keys.catalog_sequence,
                ],
                args=[version],
                client=pipe,
            )
        with redis_errors(f"delete {len(items)} product(s)"):
            replies = pipe.execute()
        return [int(reply) == UPSERT_APPLIED for reply in replies]

    def _upsert_call(self, write: ProductWrite) -> tuple[list[str], list[Any]]:
        _check_version(write.version)
        fields: dict[str, Any] = {
            "product_id": write.product_id,
            "version": write.version,
            "content_hash": write.content_hash,
            "model": write.model,
            "title": write.title,
            "brand": write.brand,
            "category": write.category,
            "updated_at": repr(float(write.updated_at)),
            "text": write.text,
        }
        has_price = write.price is not None and math.isfinite(write.price)
        if has_price:
            fields["price"] = repr(float(write.price))  # type: ignore[arg-type]
        if write.embedding is not None:
            fields["embedding"] = self._blob(write.embedding)
        args: list[Any] = [
            write.version,
            "full" if write.embedding is not None else "meta",
            write.content_hash,
            write.model,
            "1" if has_price else "",
        ]
        for name, value in fields.items():
            args += [name, value]
        keys = [
            self.keys.product(write.product_id),
            self.keys.version_fence(write.product_id),
            self.keys.catalog_sequence,
        ]
        return keys, args

    def _blob(self, vector: Vector) -> bytes:
        array = np.asarray(vector, dtype="<f4")
        if array.ndim != 1 or (self._dim is not None and array.shape[0] != self._dim):
            raise ValueError(f"expected a vector of shape ({self._dim},), got {array.shape}")
        return array.tobytes()

    # --- reads ---------------------------------------------------------------------------------

    def states(self, ids: Sequence[str]) -> dict[str, StoredState | None]:
        """Stored version and content hash per id (None: never seen), in one round trip."""
        if not ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for product_id in ids:
            pipe.get(self.keys.version_fence(product_id))
            pipe.hmget(self.keys.product(product_id), ["version", "content_hash", "model"])
        with redis_errors(f"read state of {len(ids)} product(s)"):
            replies = pipe.execute()
        states: dict[str, StoredState | None] = {}
        for i, product_id in enumerate(ids):
            fence, (version, content_hash, model) = replies[2 * i], replies[2 * i + 1]
            if fence is None and version is None:
                states[product_id] = None
                continue
            states[product_id] = StoredState(
                version=int(fence if fence is not None else version),
                content_hash=None if content_hash is None else text(content_hash),
                exists=version is not None,
                model=None if model is None else text(model),
            )
        return states

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
        fetch = k + 1 if exclude_self else k  # the product itself is usually its own nearest neighbour
        pipe = self._client.pipeline(transaction=False)
        for _, vector, flt in jobs:
            command(pipe,
                "FT.SEARCH", self.index_name, knn_query(fetch, flt),
                "PARAMS", 2, "vec", self._blob(vector),
                "SORTBY", "dist", "RETURN", 1, "dist", "LIMIT", 0, fetch, "DIALECT", 2,
            )  # fmt: skip
        with redis_errors(f"run {len(jobs)} KNN quer(ies) on {self.index_name!r}"):
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
        pipe = self._client.pipeline(transaction=False)
        for query in queries:
            radius = min(2.0, max(0.0, 1.0 - query.min_score))  # COSINE distance = 1 - cosine, in [0, 2]
            command(pipe,
                "FT.SEARCH", self.index_name, range_query(query.flt),
                "PARAMS", 4, "radius", repr(radius), "vec", self._blob(query.vector),
                "SORTBY", "dist", "RETURN", 1, "dist", "LIMIT", 0, RANGE_RESULTS_CAP, "DIALECT", 2,
            )  # fmt: skip
        with redis_errors(f"run {len(queries)} vector range quer(ies) on {self.index_name!r}"):
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
        with redis_errors(f"read the lowest admission threshold on {self.index_name!r}"):
            reply = command(self._client,
                "FT.SEARCH", self.index_name, "@kth:[(-1 +inf]",
                "SORTBY", "kth", "ASC", "RETURN", 1, "kth", "LIMIT", 0, 1, "DIALECT", 2,
            )  # fmt: skip
        hits = parse_search(reply).hits
        return float(hits[0].fields["kth"]) if hits else None

    def embeddings(self, ids: Sequence[str]) -> dict[str, Vector]:
        """Stored vectors of the ids that exist (missing ones are left out)."""
        return {
            pid: np.frombuffer(blob, dtype="<f4").astype(np.float32)
            for pid, blob in self._field_of(ids, "embedding").items()
        }

    def catalog_stamp(self) -> int:
        """How many product writes and deletes were applied so far: read it BEFORE reading vectors, and
        what is read afterwards reflects at least those writes."""
        with redis_errors("read the catalog sequence"):
            value = self._client.get(self.keys.catalog_sequence)
        return int(value) if value is not None else 0

    def versioned_embeddings(self, ids: Sequence[str]) -> dict[str, tuple[Vector, int]]:
        """Stored vector and version of the ids that exist, each pair read together (one HMGET), so a
        list computed from the vector is labelled with the version it came from."""
        if not ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for product_id in ids:
            pipe.hmget(self.keys.product(product_id), ["embedding", "version"])
        with redis_errors(f"read {len(ids)} embedding(s)"):
            replies = pipe.execute()
        return {
            pid: (np.frombuffer(blob, dtype="<f4").astype(np.float32), int(version))
            for pid, (blob, version) in zip(ids, replies, strict=True)
            if blob is not None and version is not None
        }

    def admission_thresholds(self, ids: Sequence[str]) -> dict[str, float]:
        """``kth`` of the ids whose list was made current (see core/refresh), by product id."""
        return {pid: float(value) for pid, value in self._field_of(ids, "kth").items()}

    def texts(self, ids: Sequence[str]) -> dict[str, str]:
        """The stored text of the ids that have one (what the encoder embedded)."""
        return {pid: text(value) for pid, value in self._field_of(ids, "text").items()}

    def _field_of(self, ids: Sequence[str], field: str) -> dict[str, bytes]:
        """One hash field of each id that has it, in one round trip."""
        if not ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for product_id in ids:
            pipe.hget(self.keys.product(product_id), field)
        with redis_errors(f"read {field!r} of {len(ids)} product(s)"):
            replies = pipe.execute()
        return {pid: value for pid, value in zip(ids, replies, strict=True) if value is not None}

    def metadata(self, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """title/brand/category/price of the ids that exist (a missing price is left out)."""
        if not ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for product_id in ids:
            pipe.hmget(self.keys.product(product_id), list(METADATA_FIELDS))
        with redis_errors(f"read metadata of {len(ids)} product(s)"):
            replies = pipe.execute()
        found: dict[str, dict[str, str]] = {}
        for product_id, values in zip(ids, replies, strict=True):
            if all(value is None for value in values):
                continue
            found[product_id] = {
                name: text(value) for name, value in zip(METADATA_FIELDS, values, strict=True) if value is not None
            }
        return found

    def all_product_ids(self) -> list[str]:
        """Every stored product id (SCAN over the product prefix; order unspecified)."""
        pattern = _escape_glob(self.keys.product_prefix) + "*"
        with redis_errors("scan product ids"):
            return [self.keys.product_id_of(text(key)) for key in self._client.scan_iter(match=pattern, count=1000)]

    def count(self) -> int:
        """Documents in the index."""
        with redis_errors(f"count documents of {self.index_name!r}"):
            reply = command(self._client, "FT.SEARCH", self.index_name, "*", "LIMIT", 0, 0, "DIALECT", 2)
        return parse_search(reply).total


def _check_version(version: int) -> None:
    if not 0 <= version < MAX_VERSION:
        raise ValueError(f"version must be in [0, 2**53), got {version}")


def _vector_dim(info: Mapping[str, Any]) -> int | None:
    for attribute in info_attributes(info):
        if text(attribute.get("type", "")) == "VECTOR" and "dim" in attribute:
            return int(text(attribute["dim"]))
    return None
