"""The Apache Kafka broker of the local stack: jars from Maven Central, one KRaft node on loopback."""

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import SecretStr

from simstream.devstack.commands import run_quiet, run_visible
from simstream.devstack.errors import DevStackError
from simstream.devstack.layout import LOOPBACK, StackLayout

SERVICE = "kafka"
BROKER_JAR_PREFIX = "kafka_2.13-"
_COMPLETE_MARKER = ".simstream-complete"
_FORMAT_TIMEOUT_S = 120.0
_POLL_S = 0.25

# Small heap, serial GC and C1 only: a dev broker on a 2-core box starts faster and leaves CPU to the tests.
JVM_FLAGS = (
    "-Xms64m",
    "-Xmx512m",
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
    *, port: int, controller_port: int, data_dir: Path, sasl: SaslListener | None = None
) -> str:
    """Single-node combined broker+controller. Replication 1 everywhere: one node cannot hold 3 replicas."""
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
    entries = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{LOOPBACK}:{controller_port}",
        "listeners": ",".join(listeners),
        "advertised.listeners": ",".join(listeners),
        "listener.security.protocol.map": ",".join(protocol_map),
        **sasl_entries,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        # The group coordinator and transactions never become available on one node with the defaults (3).
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
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


def write_config(layout: StackLayout, *, port: int, controller_port: int, sasl: SaslListener | None = None) -> Path:
    """server.properties and the log4j2 config, copied out of the package so they are plain files."""
    layout.kafka_config.parent.mkdir(parents=True, exist_ok=True)
    text = render_server_properties(
        port=port, controller_port=controller_port, data_dir=layout.kafka_data_dir, sasl=sasl
    )
    # Owner-only: with a SASL listener the file holds the dev user's password (PLAIN needs it in clear).
    descriptor = os.open(layout.kafka_config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also when the file existed with wider permissions
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    log4j = layout.kafka_config.parent / "log4j2.properties"
    log4j.write_bytes(resources.files("simstream.devstack").joinpath("log4j2.properties").read_bytes())
    return log4j


def format_storage_once(layout: StackLayout, libs: Path) -> None:
    """KRaft needs a formatted log dir; formatting costs a JVM start, so skip it when already done."""
    if (layout.kafka_data_dir / "meta.properties").exists():
        return
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
    argv = [
        java_executable(),
        *JVM_FLAGS,
        "-cp",
        f"{libs}/*",
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "-g",
        "-t",
        cluster_id,
        "-c",
        str(layout.kafka_config),
    ]
    run_quiet(argv, what="formatting Kafka storage", log_file=layout.log_file(SERVICE), timeout_s=_FORMAT_TIMEOUT_S)


def broker_command(layout: StackLayout, libs: Path, log4j_config: Path) -> list[str]:
    return [
        java_executable(),
        *JVM_FLAGS,
        f"-Dkafka.logs.dir={layout.logs_dir / 'kafka'}",
        f"-Dlog4j2.configurationFile=file:{log4j_config}",
        "-cp",
        f"{libs}/*",
        "kafka.Kafka",
        str(layout.kafka_config),  # also the identity that proves a pid is this stack's broker
    ]


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise DevStackError("java is not on PATH: the Kafka 4.x broker needs Java 17 or newer")
    return java


def wait_ready(bootstrap: str, *, deadline: float, still_running: Callable[[], bool]) -> None:
    """Ready means the broker answers a metadata request, not merely that its port accepts connections."""
    host, _, port = bootstrap.rpartition(":")
    while not _accepts(host, int(port)):
        _check_progress(deadline, still_running)
        time.sleep(_POLL_S)
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(_probe_config(bootstrap))
    while True:
        try:
            admin.list_topics(timeout=max(0.5, min(2.0, deadline - time.monotonic())))
            return
        except KafkaException:
            _check_progress(deadline, still_running)


def answers_metadata(bootstrap: str, *, timeout_s: float) -> bool:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(_probe_config(bootstrap))
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return True


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
