"""The input topic gets the worker's partition count (6, as in docker-compose) whoever comes first:
`simstream publish` before any worker, or `simstream dev up` before anything else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient

from simstream.cli import main
from simstream.core.namespace import namespace_fields
from simstream.devstack import stack
from simstream.devstack.ports import free_ports
from simstream.producers.publish import publish_file
from simstream.schemas.settings import Settings

pytestmark = pytest.mark.integration

WORKER_PARTITIONS = 6


def partitions(bootstrap: str, topic: str) -> int:
    described = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic=topic, timeout=10).topics[topic]
    assert described.error is None, described.error
    return len(described.partitions)


def test_publish_before_any_worker_creates_the_input_topic_with_the_workers_partitions(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, **namespace_fields(unique_name))
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_bytes(orjson.dumps({"product_id": "p-1", "title": "USB speakers"}) + b"\n")
    assert publish_file(settings, catalog, progress=False).sent == 1
    assert partitions(kafka_bootstrap, settings.input_topic) == WORKER_PARTITIONS


@pytest.fixture
def dev_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    kafka_port, controller_port, redis_port = free_ports(3)
    env = {
        "SIMSTREAM_DEV_STATE_DIR": str(tmp_path / "state"),
        "SIMSTREAM_DEV_KAFKA_PORT": str(kafka_port),
        "SIMSTREAM_DEV_KAFKA_CONTROLLER_PORT": str(controller_port),
        "SIMSTREAM_DEV_REDIS_PORT": str(redis_port),
        "SIMSTREAM_DEV_REDIS_AOF": "false",
        "SIMSTREAM_DEV_STOP_TIMEOUT_S": "15",
        "SIMSTREAM_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    try:
        yield settings
    finally:
        stack.down(settings, progress=lambda _: None)


def test_dev_up_creates_the_workers_topics(dev_env: Settings) -> None:
    assert main(["dev", "up"]) == 0
    assert partitions(dev_env.kafka_bootstrap, dev_env.input_topic) == WORKER_PARTITIONS
    assert partitions(dev_env.kafka_bootstrap, dev_env.output_topic) == WORKER_PARTITIONS
