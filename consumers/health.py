"""Readiness of the worker: Redis answers PING, Kafka answers metadata, the model is loaded.

Each check is a callable that returns on success and raises on failure; the exception's text becomes
the reason in ``/healthz``'s JSON body. Kafka's check is cached for a few seconds, so that frequent
probes do not turn into a metadata request each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson
import redis
from confluent_kafka.admin import AdminClient

from simstream.core.errors import SimstreamError
from simstream.core.log_limit import kafka_logger
from simstream.core.redis_client import make_redis_client
from simstream.schemas.settings import Settings, kafka_client_config

HealthCheck = Callable[[], None]

CHECK_TIMEOUT_S = 2.0  # a probe must answer well within a Kubernetes probe's default 1-10 s
KAFKA_CACHE_S = 5.0


class HealthCheckFailed(SimstreamError):
    """One readiness check did not pass; the message says why."""


@dataclass(frozen=True, slots=True)
class HealthReport:
    failures: Mapping[str, str]  # check name -> why it failed

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> bytes:
        return orjson.dumps({"status": "ok" if self.ok else "unavailable", "failed": dict(self.failures)})


class HealthChecker:
    def __init__(self, checks: Mapping[str, HealthCheck]) -> None:
        self._checks = dict(checks)

    def report(self) -> HealthReport:
        failures: dict[str, str] = {}
        for name, check in self._checks.items():
            try:
                check()
            except Exception as exc:  # any failure of a probe is a "not ready", never a crashed server
                failures[name] = f"{type(exc).__name__}: {exc}"
        return HealthReport(failures)

    @classmethod
    def from_settings(cls, settings: Settings, model_loaded: Callable[[], bool]) -> HealthChecker:
        return cls(
            {
                "redis": redis_ping(settings),
                "kafka": CachedCheck(kafka_metadata(settings), KAFKA_CACHE_S),
                "model": model_check(model_loaded),
            }
        )


class CachedCheck:
    """Repeats the last outcome (pass or the same exception) for ``ttl_s`` seconds."""

    def __init__(self, check: HealthCheck, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._check = check
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()  # the HTTP server answers probes on several threads
        self._checked_at: float | None = None
        self._error: Exception | None = None

    def __call__(self) -> None:
        with self._lock:
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= self._ttl_s:
                try:
                    self._check()
                    self._error = None
                except Exception as exc:
                    self._error = exc
                self._checked_at = now
            error = self._error
        if error is not None:
            raise error.with_traceback(None)  # a fresh traceback: re-raising must not grow the old one


def redis_ping(settings: Settings) -> HealthCheck:
    client = make_redis_client(settings)
    # The probe's own client with short timeouts: a black-holed Redis must not hang /healthz.
    client.connection_pool.connection_kwargs.update(
        socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=CHECK_TIMEOUT_S, retry_on_timeout=False
    )

    def check() -> None:
        try:
            answered = client.ping()
        except redis.exceptions.RedisError as exc:
            raise HealthCheckFailed(f"Redis PING failed: {exc}") from exc
        if not answered:
            raise HealthCheckFailed("Redis PING got no PONG")

    return check


def kafka_metadata(settings: Settings) -> HealthCheck:
    topic = settings.input_topic
    lock = threading.Lock()
    clients: list[AdminClient] = []  # made on the first probe: no Kafka connection until someone asks

    def check() -> None:
        with lock:
            if not clients:
                clients.append(AdminClient(kafka_client_config(settings), logger=kafka_logger()))
        try:
            metadata = clients[0].list_topics(topic=topic, timeout=CHECK_TIMEOUT_S)
        except Exception as exc:  # KafkaException, or the client's own timeout
            raise HealthCheckFailed(f"Kafka metadata request failed: {exc}") from exc
        finally:
            clients[0].poll(0)  # its log lines wait in a queue until served
        if not metadata.brokers:
            raise HealthCheckFailed("Kafka metadata lists no broker")
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            raise HealthCheckFailed(f"input topic {topic!r} unavailable: {described.error if described else 'absent'}")

    return check


def model_check(model_loaded: Callable[[], bool]) -> HealthCheck:
    def check() -> None:
        if not model_loaded():
            raise HealthCheckFailed("model not loaded yet")

    return check
