"""The Apache Kafka of the local stack: jars from Maven Central, KRaft nodes on loopback.

One node by default. A cluster (``dev_kafka_brokers`` > 1) runs every node as broker and controller:
N JVMs instead of N + 1, and a controller quorum of N (a static ``controller.quorum.voters``), so
losing any one node of three leaves both a controller majority and two in-sync replicas.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import itertools
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import SecretStr

from simstream.devstack.commands import run_quiet, run_visible
from simstream.devstack.errors import DevStackError
from simstream.devstack.layout import LOOPBACK, KafkaNode, StackLayout

BROKER_JAR_PREFIX = "kafka_2.13-"
_COMPLETE_MARKER = ".simstream-complete"
_FORMAT_TIMEOUT_S = 120.0
_POLL_S = 0.25

# Small heap, serial GC and C1 only: a dev broker on a 2-core box starts faster and leaves CPU to the tests.
# A cluster node gets less heap: three of them share the box with the workers.
SINGLE_NODE_HEAP = "-Xmx512m"
CLUSTER_NODE_HEAP = "-Xmx384m"
JVM_FLAGS = (
    "-Xms64m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


@dataclass(frozen=True, slots=True)
class SaslListener:
    """An extra SASL_PLAINTEXT listener with one PLAIN user (settings dev_kafka_sasl_*)."""

    port: int
    username: str
    password: SecretStr


def render_server_properties(
    *,
    port: int,
    controller_port: int,
    data_dir: Path,
    sasl: SaslListener | None = None,
    node_id: int = 1,
    voters: Sequence[tuple[int, int]] = (),
) -> str:
    """A combined broker+controller node. Without voters ((node id, controller port) of every node) it
    is a single node, with replication 1 everywhere: one node cannot hold 3 replicas."""
    plain = f"PLAINTEXT://{LOOPBACK}:{port}"
    controller = f"CONTROLLER://{LOOPBACK}:{controller_port}"
    listeners = [plain, controller]
    protocol_map = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    sasl_entries: dict[str, str] = {}
    if sasl is not None:
        listeners.append(f"SASL_PLAINTEXT://{LOOPBACK}:{sasl.port}")
        protocol_map.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
        # PLAIN's static JAAS user list; the broker and controller keep talking PLAINTEXT among themselves.
        secret = sasl.password.get_secret_value()
        sasl_entries = {
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
                f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{sasl.username}="{secret}";'
            ),
        }
    quorum = (
        {"controller.quorum.voters": ",".join(f"{voter}@{LOOPBACK}:{cport}" for voter, cport in voters)}
        if voters
        else {"controller.quorum.bootstrap.servers": f"{LOOPBACK}:{controller_port}"}
    )
    entries = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        **quorum,
        "listeners": ",".join(listeners),
        "advertised.listeners": ",".join(listeners),
        "listener.security.protocol.map": ",".join(protocol_map),
        **sasl_entries,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        **_replication(len(voters)),
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "2",
        # The cleaner's default dedupe buffer is 128 MB of a 512 MB heap.
        "log.cleaner.dedupe.buffer.size": "2097152",
        "log.cleaner.backoff.ms": "1000",
    }
    lines = ["# Written by simstream dev up; rewritten on every start."]
    lines += [f"{key}={value}" for key, value in entries.items()]
    return "\n".join(lines) + "\n"


def _replication(nodes: int) -> dict[str, str]:
    """Replicas min(3, nodes), in sync one less: a cluster of three keeps accepting acks=all writes
    with one node down. On one node (replication 1) the internal topics' defaults (3) would never
    let the group coordinator or transactions become available."""
    factor = min(3, max(1, nodes))
    in_sync = str(max(1, factor - 1))
    internal = {
        "offsets.topic.replication.factor": str(factor),
        "transaction.state.log.replication.factor": str(factor),
        "transaction.state.log.min.isr": in_sync,
        "share.coordinator.state.topic.replication.factor": str(factor),
        "share.coordinator.state.topic.min.isr": in_sync,
    }
    if factor == 1:
        return internal
    return {"default.replication.factor": str(factor), "min.insync.replicas": in_sync, **internal}


def ensure_jars(*, cache_dir: Path, kafka_version: str, progress: Callable[[str], None]) -> Path:
    """The broker's class path folder, fetched with Maven once per version and POM."""
    return _fetch_class_path(
        cache_dir / "libs",
        "pom.xml",
        kafka_version=kafka_version,
        progress=progress,
        expected_jar=f"{BROKER_JAR_PREFIX}{kafka_version}.jar",
    )


def ensure_tool_jars(*, cache_dir: Path, kafka_version: str, progress: Callable[[str], None]) -> Path:
    """The class path folder of Kafka's Java console clients (kafka-tools), beside the broker's."""
    return _fetch_class_path(
        cache_dir / "tools-libs",
        "tools-pom.xml",
        kafka_version=kafka_version,
        progress=progress,
        expected_jar=f"kafka-tools-{kafka_version}.jar",
    )


def _fetch_class_path(
    libs: Path, pom_name: str, *, kafka_version: str, progress: Callable[[str], None], expected_jar: str
) -> Path:
    cache_dir = libs.parent
    pom = resources.files("simstream.devstack").joinpath(pom_name).read_bytes()
    stamp = f"{kafka_version} {hashlib.sha256(pom).hexdigest()}"
    if _is_complete(libs, stamp):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevStackError("Maven (mvn) is not on PATH: it fetches the Kafka jars; install Maven 3.6+")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache_dir / ".lock"):
        if _is_complete(libs, stamp):  # another process fetched while we waited for the lock
            return libs
        shutil.rmtree(libs, ignore_errors=True)
        pom_file = cache_dir / pom_name
        pom_file.write_bytes(pom)
        progress(f"fetching {expected_jar} and its dependencies with Maven into {libs} (first run only)...")
        run_visible(
            [
                mvn,
                "-B",
                "-Dstyle.color=never",
                "-f",
                str(pom_file),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-Dkafka.version={kafka_version}",
                f"-DoutputDirectory={libs}",
            ],
            progress=progress,
            prefix="  mvn | ",
            what=f"fetching Kafka {kafka_version} jars with Maven",
            cwd=cache_dir,
        )
        if not (libs / expected_jar).is_file():
            raise DevStackError(f"Maven finished but {libs} holds no {expected_jar}")
        (libs / _COMPLETE_MARKER).write_text(stamp + "\n", encoding="utf-8")
    return libs


def broker_version(libs: Path) -> str | None:
    """The broker version from its jar name (kafka_2.13-4.1.1.jar -> 4.1.1)."""
    for jar in sorted(libs.glob(f"{BROKER_JAR_PREFIX}*.jar")):
        version = jar.name.removeprefix(BROKER_JAR_PREFIX).removesuffix(".jar")
        if not version.endswith(("-test", "-sources", "-javadoc")):
            return version
    return None


def libs_of(cmdline: list[str]) -> Path | None:
    """The class path folder of a running broker, from its `-cp <libs>/*` arguments."""
    for flag, value in itertools.pairwise(cmdline):
        if flag in ("-cp", "-classpath") and value.endswith("/*"):
            return Path(value[:-2])
    return None


def write_config(layout: StackLayout, node: KafkaNode, *, sasl: SaslListener | None = None) -> Path:
    """The node's server.properties and the log4j2 config, copied out of the package so they are plain files."""
    node.config.parent.mkdir(parents=True, exist_ok=True)
    voters = [(n.node_id, n.controller_port) for n in layout.kafka_nodes] if is_cluster(layout) else []
    text = render_server_properties(
        port=node.port,
        controller_port=node.controller_port,
        data_dir=node.data_dir,
        sasl=sasl,
        node_id=node.node_id,
        voters=voters,
    )
    # Owner-only: with a SASL listener the file holds the dev user's password (PLAIN needs it in clear).
    descriptor = os.open(node.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also when the file existed with wider permissions
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    log4j = node.config.parent / "log4j2.properties"
    log4j.write_bytes(resources.files("simstream.devstack").joinpath("log4j2.properties").read_bytes())
    return log4j


def is_cluster(layout: StackLayout) -> bool:
    return len(layout.kafka_nodes) > 1


def format_storage_once(layout: StackLayout, node: KafkaNode, libs: Path) -> None:
    """KRaft needs a formatted log dir; formatting costs a JVM start, so skip it when already done.

    A single node bootstraps its own dynamic quorum (--standalone); cluster nodes take the static
    voters from their config and must all carry the same cluster id."""
    if (node.data_dir / "meta.properties").exists():
        return
    argv = [
        java_executable(),
        *JVM_FLAGS,
        "-cp",
        f"{libs}/*",
        "kafka.tools.StorageTool",
        "format",
        *([] if is_cluster(layout) else ["--standalone"]),
        "-g",
        f"--cluster-id={cluster_id(layout)}",  # one argument: an id may start with "-" (urlsafe base64)
        "-c",
        str(node.config),
    ]
    what = f"formatting Kafka storage of {node.service}"
    run_quiet(argv, what=what, log_file=node.log_file, timeout_s=_FORMAT_TIMEOUT_S)


def cluster_id(layout: StackLayout) -> str:
    """The stack's cluster id, made once and kept, so a node formatted later joins the same cluster."""
    path = layout.kafka_cluster_id_file
    with _exclusive(path.with_name(".cluster-id.lock")):
        if path.is_file():
            return path.read_text(encoding="ascii").strip()
        new = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        path.write_text(new + "\n", encoding="ascii")
        return new


def broker_command(layout: StackLayout, node: KafkaNode, libs: Path, log4j_config: Path) -> list[str]:
    return [
        java_executable(),
        *JVM_FLAGS,
        CLUSTER_NODE_HEAP if is_cluster(layout) else SINGLE_NODE_HEAP,
        f"-Dkafka.logs.dir={node.logs_dir}",
        f"-Dlog4j2.configurationFile=file:{log4j_config}",
        "-cp",
        f"{libs}/*",
        "kafka.Kafka",
        str(node.config),  # also the identity that proves a pid is this stack's node
    ]


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise DevStackError("java is not on PATH: the Kafka 4.x broker needs Java 17 or newer")
    return java


def wait_ready(node: KafkaNode, *, deadline: float, still_running: Callable[[], bool]) -> None:
    """Ready means the node answers a metadata request that lists it among the live brokers (it has
    joined the quorum and is unfenced), not merely that its port accepts connections."""
    while not _accepts(LOOPBACK, node.port):
        _check_progress(deadline, still_running)
        time.sleep(_POLL_S)
    while not answers_metadata(node.endpoint, timeout_s=max(0.5, min(2.0, deadline - time.monotonic())), node=node):
        _check_progress(deadline, still_running)
        time.sleep(_POLL_S)


def answers_metadata(bootstrap: str, *, timeout_s: float, node: KafkaNode | None = None) -> bool:
    """A metadata answer from bootstrap; with node, one that also lists that node as a live broker."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(_probe_config(bootstrap))
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return node is None or node.node_id in metadata.brokers


def _check_progress(deadline: float, still_running: Callable[[], bool]) -> None:
    if not still_running():
        raise DevStackError("the Kafka broker exited during start-up")
    if time.monotonic() >= deadline:
        raise DevStackError("the Kafka broker did not answer a metadata request in time")


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _probe_config(bootstrap: str) -> dict[str, str | int | float]:
    # log_level 0: librdkafka logs every refused connection while the broker starts, which is expected here.
    return {"bootstrap.servers": bootstrap, "log_level": 0}


def _is_complete(libs: Path, stamp: str) -> bool:
    marker = libs / _COMPLETE_MARKER
    return marker.is_file() and marker.read_text(encoding="utf-8").strip() == stamp


@contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """One fetch at a time per cache folder (a test session and a CLI may start together)."""
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
