"""`dev down` then `dev up` of a Redis with the ACL user on and AOF on replays every write: scripted
ones (logged as MULTI/EXEC) included, with no NOPERM line in redis.log."""

from __future__ import annotations

import secrets
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from pydantic import SecretStr

from simstream.core.list_store import ListStore, ListWrite
from simstream.core.namespace import namespace_fields
from simstream.core.redis_client import command, make_redis_client
from simstream.core.redis_replies import parse_info, text
from simstream.core.vector_store import Neighbor, ProductWrite, RedisVectorStore
from simstream.devstack import stack
from simstream.devstack.layout import StackLayout
from simstream.devstack.ports import free_ports
from simstream.schemas.settings import Settings

pytestmark = pytest.mark.integration

USER = "simstream-dev"
DIM = 8
PRODUCTS = 40


def _to_stderr(line: str) -> None:
    print(f"[devstack acl-restart] {line}", file=sys.stderr, flush=True)


def _write(index: int, version: int, rng: np.random.Generator) -> ProductWrite:
    vector = rng.normal(size=DIM).astype(np.float32)
    return ProductWrite(
        product_id=f"p{index}",
        version=version,
        content_hash=f"h{index}-{version}",
        model="stand-in@0",
        title=f"product {index} v{version}",
        brand="acme",
        category=f"c{index % 3}",
        price=float(index),
        updated_at=time.time(),
        embedding=vector / np.linalg.norm(vector),
        text=f"product {index}",
    )


def _snapshot(client: redis.Redis, prefix: str, index_name: str) -> dict[str, Any]:
    """Every key under the prefix with its value, and the index's document count."""
    values: dict[str, Any] = {}
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        kind = text(client.type(key))
        if kind == "string":
            values[text(key)] = client.get(key)
        elif kind == "hash":
            values[text(key)] = client.hgetall(key)
        elif kind == "set":
            values[text(key)] = client.smembers(key)
        else:
            raise AssertionError(f"unexpected {kind} key {key!r}")
    values["num_docs"] = int(text(parse_info(command(client, "FT.INFO", index_name))["num_docs"]))
    return values


def test_a_restart_with_the_acl_user_on_replays_every_write(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    password = secrets.token_hex(16)
    stack_settings = Settings(
        dev_state_dir=tmp_path / "stack",
        dev_redis_port=port,
        dev_redis_aof=True,
        dev_stop_timeout_s=15.0,
        dev_redis_acl_user=USER,
        dev_redis_acl_password=SecretStr(password),
    )
    stack.up(stack_settings, progress=_to_stderr, services=["redis"])
    try:
        (status,) = stack.status(stack_settings, services=["redis"])
        settings = Settings(
            redis_url=status.endpoint,
            redis_username=USER,
            redis_password=SecretStr(password),
            **namespace_fields("acl-restart"),
        )
        client = make_redis_client(settings)
        # As the worker writes: fenced upserts (EVALSHA, several writes each), updates, deletes, lists.
        store = RedisVectorStore.from_settings(settings, client)
        store.ensure_index(DIM, "stand-in@0")
        rng = np.random.default_rng(7)
        assert all(store.upsert([_write(i, 1, rng) for i in range(PRODUCTS)]))
        assert all(store.upsert([_write(i, 2, rng) for i in range(0, PRODUCTS, 4)]))
        assert all(store.delete([(f"p{i}", 3) for i in range(1, PRODUCTS, 10)]))
        lists = ListStore.from_settings(settings, client)
        written = lists.write_lists(
            {
                f"p{i}": ListWrite([Neighbor(f"p{i + 2}", 0.9), Neighbor(f"p{i + 4}", 0.8)], 1, "m@0")
                for i in range(0, PRODUCTS - 4, 2)
            }
        )
        assert len(written) == len(range(0, PRODUCTS - 4, 2))
        before = _snapshot(client, settings.redis_prefix, settings.index_name)
        client.close()
        # A clock that rose once per scripted write (at least): every write went through the scripts.
        assert int(before[f"{settings.redis_prefix}catalog:seq"]) >= PRODUCTS + PRODUCTS // 4 + PRODUCTS // 10
        assert before["num_docs"] == PRODUCTS - PRODUCTS // 10

        stack.down(stack_settings, progress=_to_stderr, services=["redis"])
        stack.up(stack_settings, progress=_to_stderr, services=["redis"])

        client = make_redis_client(settings)
        after = _snapshot(client, settings.redis_prefix, settings.index_name)
        client.close()
        assert after == before
    finally:
        stack.down(stack_settings, progress=_to_stderr, services=["redis"])
    log = StackLayout.from_settings(stack_settings).log_file("redis").read_text(encoding="utf-8", errors="replace")
    assert "DB loaded from append only file" in log or "Done loading" in log  # the restart did replay the AOF
    assert "NOPERM" not in log
