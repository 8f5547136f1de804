"""The RediSearch index over the product hashes: create or check it, its alias, its indexing progress.

The worker queries its own index (``index_name``): its vectors come from its model. The alias
(``index_alias``) is what other readers use; ``promote_alias`` points it at this index once a new
index built beside the old one is ready.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import redis

from simstream.core.errors import IndexMismatchError, StoreError
from simstream.core.query_syntax import ALL_QUERY
from simstream.core.redis_client import command, redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import info_attributes, parse_info, parse_search, text
from simstream.core.vector_types import TAG_SEPARATOR, Algorithm


class RedisIndex:
    def __init__(
        self,
        client: redis.Redis,
        keys: RedisKeys,
        *,
        index_name: str,
        index_alias: str,
        hnsw_m: int,
        hnsw_ef_construction: int,
        hnsw_ef_runtime: int,
        algorithm: Algorithm = "HNSW",
    ) -> None:
        self._client = client
        self.keys = keys
        self.index_name = index_name
        self.index_alias = index_alias
        self._hnsw_m = hnsw_m
        self._hnsw_ef_construction = hnsw_ef_construction
        self._hnsw_ef_runtime = hnsw_ef_runtime
        self._algorithm: Algorithm = algorithm
        # The vector dimension, once ensure_index has checked it (writes and queries check against it).
        self.dim: int | None = None

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
                    f"asked for dim={dim} model={model_id!r}. To change models without downtime, keep "
                    f"SIMSTREAM_MODEL as it was and run `simstream model upgrade --to <model>`, then "
                    f'`simstream model promote` (README, "Changing the model").'
                )
        with redis_errors(f"record index {self.index_name!r} metadata"):
            self._client.hset(meta_key, mapping={"dim": dim, "model": model_id, "algorithm": self._algorithm})
            if self.alias_target() is None:
                try:
                    command(self._client, "FT.ALIASADD", self.index_alias, self.index_name)
                except redis.exceptions.ResponseError as exc:
                    if "exists" not in str(exc).lower():  # another worker added it first: fine
                        raise
        self.dim = dim

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

    def count(self) -> int:
        """Documents in the index."""
        with redis_errors(f"count documents of {self.index_name!r}"):
            reply = command(self._client, "FT.SEARCH", self.index_name, ALL_QUERY, "LIMIT", 0, 0, "DIALECT", 2)
        return parse_search(reply).total


def _vector_dim(info: Mapping[str, Any]) -> int | None:
    for attribute in info_attributes(info):
        if text(attribute.get("type", "")) == "VECTOR" and "dim" in attribute:
            return int(text(attribute["dim"]))
    return None
