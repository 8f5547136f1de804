"""deploy/redis/users.acl on the real Redis 8.2 + RediSearch 2.10.5: the storefront user can search
through the alias and read lists and product hashes but change nothing; the worker streams under its
own user without a single ACL denial."""

from __future__ import annotations

import hashlib
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pytest
import redis
from pydantic import SecretStr
from support.acl import DEPLOY_ACL_FILE, STOREFRONT, WORKER, render_acl_rules
from support.streaming import RunningWorker, create_stream_topics, event, publish, stream_settings, wait_for

from simstream.core.encoder import TransformerEncoder
from simstream.core.list_store import ListStore, ListWrite
from simstream.core.namespace import namespace_fields
from simstream.core.redis_client import command, make_redis_client
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import parse_search
from simstream.core.vector_store import Neighbor, ProductWrite, RedisVectorStore
from simstream.devstack import redis_server, stack
from simstream.devstack.layout import StackLayout
from simstream.devstack.ports import free_ports
from simstream.schemas.settings import Settings

pytestmark = pytest.mark.integration

ADMIN = "simstream-test-admin"
DIM = 8


def _to_stderr(line: str) -> None:
    print(f"[devstack acl-rules] {line}", file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A private Redis started with an admin ACL user; each test loads the deploy rules into it."""
    (port,) = free_ports(1)
    settings = Settings(
        dev_state_dir=tmp_path_factory.mktemp("devstack-acl-rules"),
        dev_redis_port=port,
        dev_redis_aof=False,
        dev_stop_timeout_s=15.0,
        dev_redis_acl_user=ADMIN,
        dev_redis_acl_password=SecretStr(secrets.token_hex(16)),
    )
    stack.up(settings, progress=_to_stderr, services=["redis"])
    try:
        yield settings
    finally:
        stack.down(settings, progress=_to_stderr, services=["redis"])


@dataclass(frozen=True, slots=True)
class DeployUsers:
    """The deploy file's users, loaded for one test's namespace."""

    url: str
    name: str
    passwords: dict[str, str]
    admin: redis.Redis

    def settings(self, user: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": self.url,
            **namespace_fields(self.name),
            "redis_username": user,
            "redis_password": SecretStr(self.passwords[user]),
            **overrides,
        }
        return Settings(**values)

    def client(self, user: str) -> redis.Redis:
        return redis.Redis.from_url(self.url, username=user, password=self.passwords[user])

    def denials(self, user: str) -> list[dict[str, Any]]:
        entries = command(self.admin, "ACL", "LOG", 1000)
        return [entry for entry in entries if _field(entry, "username") == user]


@pytest.fixture
def deploy_users(acl_redis: Settings, unique_name: str) -> Iterator[DeployUsers]:
    """The deploy file rendered for this test, plus the admin line, loaded with ACL LOAD (the same parser
    as ``aclfile`` at start, which rejects the whole file on any error)."""
    assert acl_redis.dev_redis_acl_password is not None
    admin_password = acl_redis.dev_redis_acl_password.get_secret_value()
    passwords = {WORKER: secrets.token_hex(16), STOREFRONT: secrets.token_hex(16)}
    digest = hashlib.sha256(admin_password.encode()).hexdigest()
    rules = render_acl_rules(unique_name, passwords) + f"user {ADMIN} on #{digest} ~* &* +@all\n"
    redis_server.acl_file(StackLayout.from_settings(acl_redis)).write_text(rules, encoding="ascii")
    (status,) = stack.status(acl_redis, services=["redis"])
    admin = redis.Redis.from_url(status.endpoint, username=ADMIN, password=admin_password, decode_responses=True)
    assert admin.execute_command("ACL", "LOAD")  # type: ignore[no-untyped-call]
    admin.execute_command("ACL", "LOG", "RESET")  # type: ignore[no-untyped-call]
    users = DeployUsers(url=status.endpoint, name=unique_name, passwords=passwords, admin=admin)
    try:
        yield users
    finally:
        for key in admin.scan_iter(match=f"{unique_name}:*", count=1000):
            admin.delete(key)
        for index in admin.execute_command("FT._LIST"):  # type: ignore[no-untyped-call]
            if index.startswith(unique_name):
                admin.execute_command("FT.DROPINDEX", index)  # type: ignore[no-untyped-call]
        admin.close()


def test_the_file_as_shipped_does_not_load_until_its_placeholders_are_replaced(acl_redis: Settings) -> None:
    assert acl_redis.dev_redis_acl_user is not None and acl_redis.dev_redis_acl_password is not None
    user = redis_server.AclUser(name=acl_redis.dev_redis_acl_user, password=acl_redis.dev_redis_acl_password)
    layout = StackLayout.from_settings(acl_redis)
    path = redis_server.write_acl_file(layout, user)
    admin_line = path.read_text(encoding="ascii").splitlines()[1]
    path.write_text(DEPLOY_ACL_FILE.read_text(encoding="ascii") + admin_line + "\n", encoding="ascii")
    (status,) = stack.status(acl_redis, services=["redis"])
    admin = redis.Redis.from_url(status.endpoint, username=user.name, password=user.password.get_secret_value())
    try:
        with pytest.raises(redis.exceptions.ResponseError, match="password hash must be exactly 64 characters"):
            admin.execute_command("ACL", "LOAD")  # type: ignore[no-untyped-call]
        assert admin.execute_command("ACL", "WHOAMI") == user.name.encode()  # type: ignore[no-untyped-call]
    finally:
        admin.close()
        redis_server.write_acl_file(layout, user)


def _field(entry: Any, name: str) -> Any:
    fields = entry if isinstance(entry, dict) else dict(zip(entry[::2], entry[1::2], strict=False))
    return fields.get(name)


def _vector(*components: float) -> np.ndarray[Any, np.dtype[np.float32]]:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(components)] = components
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def _write(product_id: str, vector: np.ndarray[Any, np.dtype[np.float32]]) -> ProductWrite:
    return ProductWrite(
        product_id=product_id,
        version=1,
        content_hash=f"h-{product_id}",
        model="stand-in@0",
        title=f"product {product_id}",
        brand="acme",
        category="audio",
        price=10.0,
        updated_at=time.time(),
        embedding=vector,
        text=f"product {product_id}",
    )


def test_the_storefront_user_reads_and_searches_but_cannot_change_anything(deploy_users: DeployUsers) -> None:
    # Written as the worker would, under the worker's own user.
    worker_settings = deploy_users.settings(WORKER)
    worker_client = make_redis_client(worker_settings)
    store = RedisVectorStore.from_settings(worker_settings, worker_client)
    store.ensure_index(DIM, "stand-in@0")
    vectors = {"a": _vector(1.0), "b": _vector(1.0, 0.3), "c": _vector(0.2, 1.0)}
    assert store.upsert([_write(pid, vector) for pid, vector in vectors.items()]) == [True, True, True]
    # A later model generation's product hash (`simstream model`), as the worker writes it.
    later = RedisKeys(worker_settings.redis_prefix, f"{worker_settings.redis_prefix}g2:")
    worker_client.hset(later.product("a"), mapping={"title": "product a", "version": 1})
    # A list made current as the pipeline does it: prepared (versioned), (emitted,) committed.
    lists = ListStore.from_settings(worker_settings, worker_client)
    assert "a" in lists.write_lists({"a": ListWrite([Neighbor("b", 0.95), Neighbor("c", 0.3)], 1, "stand-in@0")})
    worker_client.close()

    keys = store.keys
    alias = worker_settings.index_alias
    shop = deploy_users.client(STOREFRONT)
    knn = command(shop,
        "FT.SEARCH", alias, "*=>[KNN 2 @embedding $vec AS dist]", "PARAMS", 2, "vec", vectors["a"].tobytes(),
        "SORTBY", "dist", "RETURN", 2, "dist", "title", "DIALECT", 2,
    )  # fmt: skip
    assert [hit.key for hit in parse_search(knn).hits] == [keys.product("a"), keys.product("b")]
    filtered = command(shop, "FT.SEARCH", alias, "@category:{audio} @price:[0 20]", "RETURN", 1, "title", "DIALECT", 2)
    assert sorted(hit.key for hit in parse_search(filtered).hits) == sorted(keys.product(pid) for pid in vectors)
    assert command(shop, "FT.AGGREGATE", alias, "*", "GROUPBY", 1, "@category", "REDUCE", "COUNT", 0, "AS", "n")
    assert command(shop, "FT.INFO", alias)
    listed = orjson.loads(shop.get(keys.similar("a")) or b"null")
    assert [item["product_id"] for item in listed["items"]] == ["b", "c"]
    assert shop.mget([keys.similar("a"), keys.similar("b")])[1] is None
    assert shop.hget(keys.product("b"), "title") == b"product b"
    assert shop.hmget(keys.product("c"), ["brand", "category"]) == [b"acme", b"audio"]
    assert shop.hgetall(keys.product("a"))[b"version"] == b"1"
    assert shop.hget(later.product("a"), "title") == b"product a"  # what the alias returns after a swap

    denied: list[tuple[Any, ...]] = [
        ("HSET", keys.product("a"), "price", "0"),
        ("HDEL", keys.product("a"), "price"),
        ("SET", keys.similar("a"), "{}"),
        ("DEL", keys.product("a")),
        ("DEL", keys.similar("a")),
        ("UNLINK", keys.similar("a")),
        ("EVAL", "return 1", 0),
        ("SCRIPT", "LOAD", "return 1"),
        ("FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('f', function() return 1 end)"),
        ("FCALL", "f", 0),
        ("FLUSHALL",),
        ("FLUSHDB",),
        ("CONFIG", "SET", "appendonly", "no"),
        ("CONFIG", "GET", "requirepass"),
        ("KEYS", "*"),
        ("GET", keys.version_fence("a")),  # outside the storefront's key patterns
        ("FT.SEARCH", worker_settings.index_name, "*"),  # only through the alias
        ("FT.DROPINDEX", alias),
        ("FT.ALIASUPDATE", alias, worker_settings.index_name),
        ("FT.CREATE", alias, "ON", "HASH", "SCHEMA", "t", "TEXT"),
    ]
    for args in denied:
        with pytest.raises(redis.exceptions.NoPermissionError):
            command(shop, *args)
    shop.close()
    assert deploy_users.admin.hget(keys.product("a"), "price") == "10.0"
    assert deploy_users.admin.exists(keys.similar("a"), keys.product("a")) == 2
    assert deploy_users.denials(WORKER) == []


def test_the_worker_streams_under_its_own_user_without_a_denial(
    deploy_users: DeployUsers, kafka_bootstrap: str, default_encoder: TransformerEncoder
) -> None:
    settings = stream_settings(
        kafka_bootstrap,
        deploy_users.url,
        deploy_users.name,
        redis_username=WORKER,
        redis_password=SecretStr(deploy_users.passwords[WORKER]),
    )
    create_stream_topics(settings, partitions=2)
    titles = {
        "spk-1": "Logitech USB computer speakers, black",
        "spk-2": "Creative Pebble USB desktop speakers",
        "spk-3": "Bose Companion 2 multimedia speaker system",
        "cam-1": "Canon PowerShot compact digital camera",
        "cam-2": "Nikon Coolpix digital camera 16 MP",
    }
    products = {pid: {"title": title, "category": pid[:3], "price": 50.0} for pid, title in titles.items()}
    lists = ListStore.from_settings(settings)
    with RunningWorker(settings, default_encoder) as running:
        publish(settings, [event(pid, 1, product) for pid, product in products.items()])
        wait_for(lambda: len(lists.read_lists(list(products))) == len(products), 180, "a list for every product")
        publish(settings, [event("spk-1", 2, {**products["spk-1"], "price": 25.0}), event("cam-2", 2)])

        def updated_and_deleted() -> bool:
            current = lists.read_lists(list(products))
            listed = {item.product_id for stored in current.values() for item in stored.items}
            return "cam-2" not in current and "cam-2" not in listed and current["spk-1"].source_version == 2

        wait_for(updated_and_deleted, 180, "the update and the delete in every list")
        assert running.alive()
    assert deploy_users.denials(WORKER) == []
    shop = deploy_users.client(STOREFRONT)
    listed = orjson.loads(shop.get(lists.keys.similar("spk-2")) or b"null")
    assert "spk-1" in [item["product_id"] for item in listed["items"]]
    shop.close()
