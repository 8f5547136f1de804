"""clear_redis_namespace on a real Redis: the index and the prefix's keys go, a neighbour's stay."""

from __future__ import annotations

import pytest

from simstream.core.namespace import clear_redis_namespace, namespace_fields
from simstream.core.redis_client import command, make_redis_client
from simstream.core.vector_store import RedisVectorStore
from simstream.schemas.settings import Settings

pytestmark = pytest.mark.integration


def test_clearing_drops_the_index_and_the_prefix_keys_only(redis_url: str, unique_name: str) -> None:
    settings = Settings(redis_url=redis_url, **namespace_fields(unique_name))
    neighbour = Settings(redis_url=redis_url, **namespace_fields(f"{unique_name}x"))
    client = make_redis_client(settings)
    RedisVectorStore.from_settings(settings, client).ensure_index(4, "test-model@1")
    client.set(f"{settings.redis_prefix}similar:p1", b"[]")
    client.sadd(f"{settings.redis_prefix}rev:p1", b"p2")
    client.set(f"{neighbour.redis_prefix}similar:p1", b"[]")
    try:
        clear_redis_namespace(settings, client)
        indexes = {name.decode() if isinstance(name, bytes) else name for name in command(client, "FT._LIST")}
        assert settings.index_name not in indexes
        assert not list(client.scan_iter(match=f"{settings.redis_prefix}*", count=1000))
        assert client.get(f"{neighbour.redis_prefix}similar:p1") == b"[]"
        clear_redis_namespace(settings, client)  # nothing left, no index: still no error
    finally:
        clear_redis_namespace(neighbour, client)
