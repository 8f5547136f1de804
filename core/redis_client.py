"""Building the Redis client from settings, and turning redis-py errors into simstream's.

The client keeps ``decode_responses=False``: embeddings travel as raw FLOAT32 bytes. Replies of the
search commands are parsed for both RESP2 and RESP3 (``redis_replies``), so the protocol is left to
redis-py's default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import hiredis
import redis
from redis._parsers.encoders import Encoder
from redis.client import Pipeline
from redis.connection import PythonRespSerializer

from simstream.core.errors import StoreAuthError, StoreError, StoreUnavailableError
from simstream.schemas.settings import Settings

# BusyLoadingError (server replaying its AOF/RDB) subclasses ConnectionError in redis-py; named for clarity.
TRANSIENT_REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
)
# AuthenticationError subclasses ConnectionError too, but a wrong password stays wrong: never retried.
AUTH_REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.AuthenticationError,
    redis.exceptions.AuthenticationWrongNumberOfArgsError,
)
CREDENTIALS_HINT = "check SIMSTREAM_REDIS_USERNAME / SIMSTREAM_REDIS_PASSWORD (or the user-info of SIMSTREAM_REDIS_URL)"


class DirectPacker:
    """Packs a command with hiredis straight from its arguments (redis-py's ``command_packer`` hook).

    redis-py's own serializer first encodes every argument in Python (about 0.5 µs each), and one batch's
    list work sends some 9,000 commands of about 8 arguments. hiredis writes a str as UTF-8 and a number
    as ``repr`` does, which is what redis-py sends, so the bytes are the same (tests/unit/test_redis_packer.py)
    in a quarter of the time. What hiredis refuses (a bool, a bytearray) goes to redis-py's serializer,
    which packs it or raises its usual DataError.
    """

    def __init__(self) -> None:
        # The client's encoding: decode_responses=False and redis-py's defaults (UTF-8, strict).
        encoder = Encoder("utf-8", "strict", False)  # type: ignore[no-untyped-call]
        self._fallback = PythonRespSerializer(6000, encoder.encode)

    def pack(self, *args: Any) -> list[bytes]:
        first = args[0]
        # redis-py's methods name some commands in one string ("CONFIG GET"): split, as redis-py does.
        if (isinstance(first, str) and " " in first) or (isinstance(first, bytes) and b" " in first):
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            packed: list[bytes] = self._fallback.pack(*args)  # type: ignore[no-untyped-call]
            return packed


DIRECT_PACKER = DirectPacker()


def make_redis_client(settings: Settings) -> redis.Redis:
    """A client for ``settings.redis_url``; username and password from settings win over the URL's.

    Lazy, as redis-py is: wrong credentials surface at the first command (``check_access`` forces one).
    """
    url = settings.redis_url
    tls: dict[str, Any] = {}
    if settings.redis_tls_enabled:
        url = tls_url(url)
        tls = tls_options(settings)
    client: redis.Redis = redis.Redis.from_url(url, decode_responses=False, health_check_interval=30, **tls)
    # from_url lets the URL's user-info override keyword arguments; set them on the pool instead, which
    # every connection is built from (none exists yet).
    credentials: dict[str, str] = {}
    if settings.redis_username is not None:
        credentials["username"] = settings.redis_username
    if settings.redis_password is not None:
        credentials["password"] = settings.redis_password.get_secret_value()
    client.connection_pool.connection_kwargs.update(credentials)
    client.connection_pool.connection_kwargs["command_packer"] = DIRECT_PACKER
    return client


def tls_url(url: str) -> str:
    """redis-py picks its TLS connection class from the scheme only: redis:// becomes rediss://."""
    return "rediss://" + url.removeprefix("redis://") if url.startswith("redis://") else url


def tls_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {"ssl_cert_reqs": "required", "ssl_check_hostname": settings.redis_tls_check_hostname}
    if settings.redis_tls_ca is not None:
        options["ssl_ca_certs"] = settings.redis_tls_ca
    if settings.redis_tls_cert is not None:
        options["ssl_certfile"] = settings.redis_tls_cert
    if settings.redis_tls_key is not None:
        options["ssl_keyfile"] = settings.redis_tls_key
    return options


def check_access(client: redis.Redis) -> None:
    """One PING, so wrong credentials fail at start with a message naming the user (never the password)."""
    user = client.connection_pool.connection_kwargs.get("username") or "default"
    try:
        client.ping()
    except AUTH_REDIS_ERRORS as exc:
        raise StoreAuthError(f"Redis rejected the credentials for user {user!r} ({exc}); {CREDENTIALS_HINT}") from exc
    except redis.exceptions.RedisError as exc:
        raise store_error(exc, "ping") from exc


TRANSIENT_REPLY_PREFIXES = (
    "LOADING",
    "BUSY ",
    "OOM ",
    "MISCONF ",
    "READONLY ",
    "TRYAGAIN ",
    "CLUSTERDOWN ",
    "MASTERDOWN ",
    "NOREPLICAS ",
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, AUTH_REDIS_ERRORS):
        return False
    if isinstance(exc, TRANSIENT_REDIS_ERRORS):
        return True
    # Server states that pass, answered as a plain ResponseError: loading, a busy script, out of memory,
    # a failed background save blocking writes, a replica, a cluster failing over.
    return isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith(TRANSIENT_REPLY_PREFIXES)


@contextmanager
def redis_errors(action: str) -> Iterator[None]:
    """Re-raise redis-py errors as simstream's (``store_error``), with the cause kept."""
    try:
        yield
    except redis.exceptions.RedisError as exc:
        raise store_error(exc, action) from exc


def store_error(exc: redis.exceptions.RedisError, action: str) -> StoreError | StoreUnavailableError:
    """StoreUnavailableError when retrying may help; StoreAuthError for refused credentials; else StoreError."""
    if isinstance(exc, AUTH_REDIS_ERRORS):
        return StoreAuthError(f"Redis rejected the credentials while trying to {action} ({exc}); {CREDENTIALS_HINT}")
    # A script's command refused by ACL comes back as a plain error reply naming the ACL.
    if isinstance(exc, redis.exceptions.NoPermissionError) or "ACL failure" in str(exc):
        return StoreAuthError(f"the Redis user lacks an ACL permission needed to {action}: {exc}")
    if is_transient(exc):
        return StoreUnavailableError(f"Redis unavailable while trying to {action}: {exc}")
    return StoreError(f"Redis error while trying to {action}: {exc}")


def command(client: redis.Redis | Pipeline, *args: Any) -> Any:
    """``execute_command`` with a typed signature (redis-py leaves it untyped): module commands (FT.*)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]
