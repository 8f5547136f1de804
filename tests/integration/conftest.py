"""Session fixtures for integration tests: a real Kafka broker and Redis 8 + RediSearch.

Nothing starts unless a test asks for ``kafka_bootstrap`` or ``redis_url``. When
SIMSTREAM_KAFKA_BOOTSTRAP / SIMSTREAM_REDIS_URL are set, those services are used as they are;
otherwise the session starts its own isolated stack (a tmp state dir, free ports) with
``simstream.devstack`` and stops it at the end of the session.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # stubs lack the re-export
from support.streaming import create_stream_topics, stream_settings

from simstream.core.encoder import TransformerEncoder
from simstream.core.namespace import clear_redis_namespace
from simstream.devstack import stack
from simstream.devstack.ports import free_ports
from simstream.schemas.settings import Settings

KAFKA_ENV = "SIMSTREAM_KAFKA_BOOTSTRAP"
REDIS_ENV = "SIMSTREAM_REDIS_URL"
TOPIC_READY_TIMEOUT_S = 30.0


class SessionStack:
    """An isolated stack for one test session; each service starts the first time a test needs it."""

    def __init__(self, state_dir: Path) -> None:
        kafka_port, controller_port, redis_port = free_ports(3)
        self.settings = Settings(
            dev_state_dir=state_dir,
            dev_kafka_port=kafka_port,
            dev_kafka_controller_port=controller_port,
            dev_redis_port=redis_port,
            dev_redis_aof=False,  # throwaway data: no fsync traffic on a shared 2-core box
            dev_stop_timeout_s=15.0,
        )
        self._started: list[stack.ServiceName] = []

    def ensure(self, service: stack.ServiceName) -> stack.ServiceStatus:
        if service not in self._started:
            stack.up(self.settings, progress=_to_stderr, services=[service])
            self._started.append(service)
        (current,) = stack.status(self.settings, services=[service])
        assert current.running, f"{service} of the test stack is not running: {current.detail}"
        return current

    def close(self) -> None:
        if self._started:
            stack.down(self.settings, progress=_to_stderr, services=self._started)


def _to_stderr(line: str) -> None:
    print(f"[devstack] {line}", file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def session_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SessionStack]:
    started = SessionStack(tmp_path_factory.mktemp("devstack"))
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    external = os.environ.get(KAFKA_ENV)
    if external:
        return external
    # Looked up only here, so a session that uses external services never starts a stack.
    session: SessionStack = request.getfixturevalue("session_stack")
    return session.ensure("kafka").endpoint


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    external = os.environ.get(REDIS_ENV)
    if external:
        return external
    session: SessionStack = request.getfixturevalue("session_stack")
    return session.ensure("redis").endpoint


@pytest.fixture
def unique_name() -> str:
    """A fresh name for a topic, group, index or key prefix: tests never share state."""
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def small_stream(kafka_bootstrap: str, redis_url: str, unique_name: str) -> Iterator[Settings]:
    """A private stream (topics, Redis namespace) with top_k 5 on an exact FLAT index, cleared after."""
    configured = stream_settings(kafka_bootstrap, redis_url, unique_name, top_k=5, vector_algorithm="FLAT")
    create_stream_topics(configured)
    yield configured
    clear_redis_namespace(configured)


@pytest.fixture
def small_pools(redis_url: str, unique_name: str) -> Iterator[Settings]:
    """A private Redis namespace (no topics) on an exact FLAT index with small pools, 8 + 4 slack: in a
    catalog of a few dozen products a change touches some lists, not every one. Cleared after."""
    configured = stream_settings(
        "127.0.0.1:1", redis_url, unique_name, vector_algorithm="FLAT", top_k=8, rerank_candidates=8, pool_slack=4
    )
    yield configured
    clear_redis_namespace(configured)


class TopicFactory(Protocol):
    def __call__(self, name: str, partitions: int = 1, config: dict[str, str] | None = None) -> str: ...


@pytest.fixture
def create_topic(kafka_bootstrap: str) -> Iterator[TopicFactory]:
    """Create a topic with N partitions, wait until metadata shows all of them; deleted after the test."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    created: list[str] = []

    def create(name: str, partitions: int = 1, config: dict[str, str] | None = None) -> str:
        new_topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
        admin.create_topics([new_topic], operation_timeout=TOPIC_READY_TIMEOUT_S)[name].result(
            timeout=TOPIC_READY_TIMEOUT_S
        )
        created.append(name)
        _wait_for_partitions(admin, name, partitions)
        return name

    yield create
    if created:
        for future in admin.delete_topics(created, operation_timeout=TOPIC_READY_TIMEOUT_S).values():
            # Cleanup only: unique names keep a leftover topic from affecting other tests.
            with contextlib.suppress(KafkaException):
                future.result(timeout=TOPIC_READY_TIMEOUT_S)


def _wait_for_partitions(admin: AdminClient, name: str, partitions: int) -> None:
    deadline = time.monotonic() + TOPIC_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        topic = admin.list_topics(topic=name, timeout=5).topics.get(name)
        leaders = [] if topic is None or topic.error else [p.leader for p in topic.partitions.values()]
        if len(leaders) == partitions and min(leaders) >= 0:
            return
        time.sleep(0.1)
    raise TimeoutError(
        f"topic {name} did not show {partitions} partitions with leaders within {TOPIC_READY_TIMEOUT_S} s"
    )


@pytest.fixture(scope="session")
def default_encoder() -> TransformerEncoder:
    """The real default model (all-MiniLM-L6-v2 from its PyPI package), loaded once per session."""
    return TransformerEncoder.from_settings(Settings())
