"""The product hashes: version-fenced writes and deletes, and the per-product reads.

Writes are version-fenced by Lua scripts (``redis_scripts``): a write applies only when its version is
greater than every version seen for the product, deletes included; older or equal versions change
nothing. Batches go out as pipelines (``transaction=False``): one round trip (plus redis-py's SCRIPT
EXISTS check of the scripts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import redis

from simstream.core.errors import EmbeddingRequiredError
from simstream.core.index_admin import RedisIndex
from simstream.core.query_syntax import escape_glob
from simstream.core.redis_client import redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import text
from simstream.core.redis_scripts import DELETE_PRODUCT, UPSERT_APPLIED, UPSERT_PRODUCT
from simstream.core.vector_types import (
    MAX_VERSION,
    METADATA_FIELDS,
    ProductWrite,
    StoredState,
    UpsertResult,
    Vector,
    blob_vector,
    vector_blob,
)


class RedisProductStore:
    def __init__(self, client: redis.Redis, keys: RedisKeys, index: RedisIndex) -> None:
        self._client = client
        self.keys = keys
        self._index = index  # its checked dimension is what embeddings must have
        self._upsert_script = client.register_script(UPSERT_PRODUCT)
        self._delete_script = client.register_script(DELETE_PRODUCT)

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
        return vector_blob(vector, self._index.dim)

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

    def embeddings(self, ids: Sequence[str]) -> dict[str, Vector]:
        """Stored vectors of the ids that exist (missing ones are left out)."""
        return {pid: blob_vector(blob) for pid, blob in self._field_of(ids, "embedding").items()}

    def catalog_stamp(self) -> int:
        """How many product writes and deletes were applied so far: read it BEFORE reading vectors, and
        what is read afterwards reflects at least those writes."""
        with redis_errors("read the catalog sequence"):
            value = self._client.get(self.keys.catalog_sequence)
        return int(value) if value is not None else 0

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
        pattern = escape_glob(self.keys.product_prefix) + "*"
        with redis_errors("scan product ids"):
            return [self.keys.product_id_of(text(key)) for key in self._client.scan_iter(match=pattern, count=1000)]


def _check_version(version: int) -> None:
    if not 0 <= version < MAX_VERSION:
        raise ValueError(f"version must be in [0, 2**53), got {version}")
