"""One run's private namespace (a test, a benchmark, a chaos scenario, the demo): the topic, group,
index and key names derived from one name, and removing what such a run left in Redis."""

from __future__ import annotations

import contextlib
from typing import TypedDict

import redis

from simstream.core.errors import StoreError
from simstream.core.generations import stored_generations
from simstream.core.query_syntax import escape_glob
from simstream.core.redis_client import make_redis_client, redis_errors
from simstream.core.vector_store import RedisVectorStore
from simstream.schemas.settings import Settings

# Keys deleted per DEL command while a prefix is cleared.
DELETE_PAGE = 1000


class NamespaceFields(TypedDict):
    """Settings fields (a TypedDict, so ``Settings(**fields)`` is type-checked field by field)."""

    input_topic: str
    output_topic: str
    dlq_topic: str
    group_id: str
    redis_prefix: str
    index_name: str
    index_alias: str


def namespace_fields(name: str) -> NamespaceFields:
    """The Settings fields that give a run named ``name`` its own topics, group, index and key prefix."""
    return {
        "input_topic": f"{name}.products",
        "output_topic": f"{name}.similar-items",
        "dlq_topic": f"{name}.products.dlq",
        "group_id": f"{name}.worker",
        "redis_prefix": f"{name}:",
        "index_name": f"{name}-idx-v1",
        "index_alias": f"{name}-idx",
    }


def clear_redis_namespace(settings: Settings, client: redis.Redis | None = None) -> None:
    """Drop ``settings.index_name`` with its documents and delete every key under ``settings.redis_prefix``
    (lists, reverse sets, metadata); what other prefixes hold is left alone."""
    client = client if client is not None else make_redis_client(settings)
    with contextlib.suppress(StoreError):  # no index: a run that never got as far as creating it
        RedisVectorStore.from_settings(settings, client).drop_index(delete_documents=True)
    for generation in stored_generations(settings, client):  # indexes of other models (`simstream model`)
        with contextlib.suppress(StoreError):
            RedisVectorStore.from_settings(generation.settings(settings), client).drop_index(delete_documents=True)
    delete_keys_under(client, settings.redis_prefix)


def delete_keys_under(client: redis.Redis, prefix: str) -> int:
    """Delete every key that starts with ``prefix`` (SCAN, one DEL per page of keys); how many."""
    deleted = 0
    with redis_errors(f"delete the keys under {prefix!r}"):
        page: list[bytes] = []
        for key in client.scan_iter(match=f"{escape_glob(prefix)}*", count=DELETE_PAGE):
            page.append(key)
            if len(page) == DELETE_PAGE:
                deleted += int(client.delete(*page))
                page.clear()
        if page:
            deleted += int(client.delete(*page))
    return deleted
