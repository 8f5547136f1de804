"""Where the local stack keeps its pids, logs and data, all under one state folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from simstream.schemas.settings import Settings

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class KafkaNode:
    """One KRaft node (broker and controller in one JVM): its ports and files. A single node keeps the
    original paths (kafka/server.properties, pids/kafka.pid), so existing state dirs stay valid."""

    node_id: int
    service: str  # "kafka", or "kafka-<id>" in a cluster: names its pid file, its log and progress lines
    port: int
    controller_port: int
    config: Path
    data_dir: Path
    pid_file: Path
    log_file: Path  # the JVM's stdout and the storage format; log4j writes server.log under logs_dir
    logs_dir: Path

    @property
    def endpoint(self) -> str:
        return f"{LOOPBACK}:{self.port}"


@dataclass(frozen=True, slots=True)
class StackLayout:
    """Absolute paths, so the same path can be matched against a running process's command line."""

    state_dir: Path
    pids_dir: Path
    logs_dir: Path
    redis_data_dir: Path
    kafka_cache_dir: Path
    kafka_nodes: tuple[KafkaNode, ...]
    kafka_cluster_id_file: Path  # one id shared by every node's formatted storage
    kafka_nodes_file: Path  # how many nodes the last `up` started: `dev status`/`down` default to it

    @classmethod
    def from_settings(cls, settings: Settings) -> StackLayout:
        state = settings.dev_state_dir.expanduser().resolve()
        return cls(
            state_dir=state,
            pids_dir=state / "pids",
            logs_dir=state / "logs",
            redis_data_dir=state / "redis",
            kafka_cache_dir=kafka_cache_dir(settings),
            kafka_nodes=_kafka_nodes(settings, state),
            kafka_cluster_id_file=state / "kafka" / "cluster-id",
            kafka_nodes_file=state / "kafka" / "nodes",
        )

    @property
    def kafka_config(self) -> Path:
        return self.kafka_nodes[0].config

    @property
    def kafka_data_dir(self) -> Path:
        return self.kafka_nodes[0].data_dir

    @property
    def kafka_bootstrap(self) -> str:
        """Every node's client listener: a client still finds the cluster when one node is down."""
        return ",".join(node.endpoint for node in self.kafka_nodes)

    def pid_file(self, service: str) -> Path:
        return self.pids_dir / f"{service}.pid"

    def log_file(self, service: str) -> Path:
        return self.logs_dir / f"{service}.log"

    def create(self) -> None:
        for folder in (self.pids_dir, self.logs_dir, self.redis_data_dir, *(n.data_dir for n in self.kafka_nodes)):
            folder.mkdir(parents=True, exist_ok=True)


def _kafka_nodes(settings: Settings, state: Path) -> tuple[KafkaNode, ...]:
    ports = settings.dev_kafka_node_ports()
    if len(ports) == 1:
        ((port, controller_port),) = ports
        return (
            KafkaNode(
                node_id=1,
                service="kafka",
                port=port,
                controller_port=controller_port,
                config=state / "kafka" / "server.properties",
                data_dir=state / "kafka" / "data",
                pid_file=state / "pids" / "kafka.pid",
                log_file=state / "logs" / "kafka.log",
                logs_dir=state / "logs" / "kafka",
            ),
        )
    return tuple(
        KafkaNode(
            node_id=node_id,
            service=f"kafka-{node_id}",
            port=port,
            controller_port=controller_port,
            config=state / "kafka" / f"node-{node_id}" / "server.properties",
            data_dir=state / "kafka" / f"node-{node_id}" / "data",
            pid_file=state / "pids" / f"kafka-{node_id}.pid",
            log_file=state / "logs" / f"kafka-{node_id}.log",
            logs_dir=state / "logs" / f"kafka-{node_id}",
        )
        for node_id, (port, controller_port) in enumerate(ports, start=1)
    )


def kafka_cache_dir(settings: Settings) -> Path:
    """The jar cache lives outside the repo (per Kafka version) so clones and CI runs share one fetch."""
    if settings.dev_kafka_cache_dir is not None:
        return settings.dev_kafka_cache_dir.expanduser().resolve()
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (cache_home / "simstream" / f"kafka-{settings.dev_kafka_version}").resolve()
