"""Building the Redis client from settings, and turning redis-py errors into simstream's.

The client keeps ``decode_responses=False``: embeddings travel as raw FLOAT32 bytes. Replies of the
search commands are parsed for both RESP2 and RESP3 (``redis_replies``), so the protocol is left to
redis-py's default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.client import Pipeline

from simstream.core.errors import StoreError, StoreUnavailableError
from simstream.schemas.settings import Settings

# BusyLoadingError (server replaying its AOF/RDB) subclasses ConnectionError in redis-py; named for clarity.
TRANSIENT_REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
)


def make_redis_client(settings: Settings) -> redis.Redis:
    """A client for ``settings.redis_url``; username and password from settings win over the URL's."""
    extra: dict[str, str] = {}
    if settings.redis_username is not None:
        extra["username"] = settings.redis_username
    if settings.redis_password is not None:
        extra["password"] = settings.redis_password.get_secret_value()
    client: redis.Redis = redis.Redis.from_url(
        settings.redis_url, decode_responses=False, health_check_interval=30, **extra
    )
    return client


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TRANSIENT_REDIS_ERRORS):
        return True
    # A replica or a restarting server may answer LOADING/BUSY as a plain ResponseError.
    return isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith(("LOADING", "BUSY "))


@contextmanager
def redis_errors(action: str) -> Iterator[None]:
    """Re-raise redis-py errors as StoreUnavailableError (retryable) or StoreError, with the cause kept."""
    try:
        yield
    except redis.exceptions.RedisError as exc:
        if is_transient(exc):
            raise StoreUnavailableError(f"Redis unavailable while trying to {action}: {exc}") from exc
        raise StoreError(f"Redis error while trying to {action}: {exc}") from exc


def command(client: redis.Redis | Pipeline, *args: Any) -> Any:
    """``execute_command`` with a typed signature (redis-py leaves it untyped): module commands (FT.*)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]
