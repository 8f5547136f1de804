"""A three-node KRaft cluster of the devstack on its own throwaway state dir: topics get three replicas
and min.insync.replicas 2, a killed node is started again alone, and down stops every node."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ClusterMetadata, ConfigResource  # type: ignore[attr-defined]

from simstream.devstack import stack
from simstream.devstack.ports import free_ports
from simstream.devstack.processes import is_alive
from simstream.producers.topics import ensure_topics
from simstream.schemas.settings import Settings

pytestmark = pytest.mark.integration
METADATA_TIMEOUT_S = 30.0


def _metadata_with(admin: AdminClient, topics: list[str]) -> ClusterMetadata:
    """Metadata once every topic shows leaders: a created topic reaches each broker a moment later."""
    deadline = time.monotonic() + METADATA_TIMEOUT_S
    while True:
        metadata = admin.list_topics(timeout=5)
        found = [metadata.topics.get(name) for name in topics]
        if all(t is not None and not t.error and all(p.leader >= 0 for p in t.partitions.values()) for t in found):
            return metadata
        assert time.monotonic() < deadline, f"topics {topics} without leaders after {METADATA_TIMEOUT_S} s"
        time.sleep(0.1)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Settings]:
    port, controller, *peers = free_ports(6)
    settings = Settings(
        dev_state_dir=tmp_path / "state",
        dev_kafka_brokers=3,
        dev_kafka_port=port,
        dev_kafka_controller_port=controller,
        dev_kafka_peer_ports=peers[:2],
        dev_kafka_peer_controller_ports=peers[2:],
        dev_stop_timeout_s=15.0,
    )
    try:
        yield settings
    finally:
        stack.down(settings, progress=lambda _: None, services=["kafka"])  # a failed assertion must not leak


def test_a_three_node_cluster_replicates_topics_and_survives_a_killed_node(cluster: Settings) -> None:
    (kafka,) = stack.up(cluster, progress=lambda _: None, services=["kafka"])
    assert kafka.running, kafka.detail
    assert kafka.endpoint == ",".join(f"127.0.0.1:{port}" for port, _ in cluster.dev_kafka_node_ports())
    assert [(member.name, member.running) for member in kafka.members] == [
        ("kafka-1", True),
        ("kafka-2", True),
        ("kafka-3", True),
    ]
    assert all("answering metadata" in member.detail for member in kafka.members)
    assert "  kafka-3 running (pid" in stack.format_status([kafka])

    # The worker's own topic creation asks for the broker default (-1): three replicas on this cluster.
    topics = Settings(kafka_bootstrap=kafka.endpoint, input_topic="c-in", output_topic="c-out", dlq_topic="c-dlq")
    ensure_topics(topics)
    admin = AdminClient({"bootstrap.servers": kafka.endpoint})
    metadata = _metadata_with(admin, ["c-in", "c-out", "c-dlq"])
    for name in ("c-in", "c-out", "c-dlq"):
        partitions = metadata.topics[name].partitions.values()
        assert {len(partition.replicas) for partition in partitions} == {3}, name
    described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "c-in")])
    (configs,) = [future.result(30) for future in described.values()]
    assert configs["min.insync.replicas"].value == "2"

    pids = {member.name: member.pid for member in kafka.members}
    victim = pids["kafka-2"]
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    (degraded,) = stack.status(cluster, services=["kafka"])
    assert not degraded.running
    assert [member.running for member in degraded.members] == [True, False, True]
    assert "2 of 3 nodes running" in degraded.detail
    assert stack.format_status([degraded]).splitlines()[0].split()[1] == "degraded"

    messages: list[str] = []
    (restarted,) = stack.up(cluster, progress=messages.append, services=["kafka"])
    assert restarted.running, restarted.detail
    again = {member.name: member.pid for member in restarted.members}
    assert again["kafka-1"] == pids["kafka-1"]
    assert again["kafka-3"] == pids["kafka-3"]
    assert again["kafka-2"] not in (None, victim)
    assert [line.split(":")[0] for line in messages if "starting on" in line] == ["kafka-2"]

    (stopped,) = stack.down(cluster, progress=lambda _: None, services=["kafka"])
    assert not stopped.running
    assert not any(is_alive(pid) for pid in again.values() if pid is not None)
    assert [path.name for path in (cluster.dev_state_dir / "pids").iterdir()] == []
