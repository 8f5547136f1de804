"""Kafka's own Java console clients (kafka-tools from Maven Central), driven from tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from simstream.devstack import kafka
from simstream.devstack.layout import kafka_cache_dir
from simstream.schemas.settings import Settings

SEPARATOR = "\t"  # orjson never writes a raw tab, and product ids hold none
RUN_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class JavaRecord:
    partition: int
    key: str
    value: str


def tool_class_path(settings: Settings) -> Path:
    """kafka-tools of the broker's version, fetched once into the jar cache (like the broker's jars)."""
    return kafka.ensure_tool_jars(
        cache_dir=kafka_cache_dir(settings),
        kafka_version=settings.dev_kafka_version,
        progress=lambda line: print(f"[kafka-tools] {line}", file=sys.stderr, flush=True),
    )


def _java(libs: Path, main_class: str, *args: str, stdin: str | None = None) -> str:
    argv = [kafka.java_executable(), *kafka.JVM_FLAGS, "-cp", f"{libs}/*", main_class, *args]
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    assert result.returncode == 0, f"{main_class} exited {result.returncode}: {result.stderr[-2000:]}"
    return result.stdout


def console_produce(libs: Path, bootstrap: str, topic: str, records: Iterable[tuple[str, str]]) -> None:
    """``kafka-console-producer --property parse.key=true``: one ``key<TAB>value`` line per record."""
    lines = "".join(f"{key}{SEPARATOR}{value}\n" for key, value in records)
    _java(
        libs,
        "org.apache.kafka.tools.ConsoleProducer",
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--property",
        "parse.key=true",
        "--property",
        f"key.separator={SEPARATOR}",
        stdin=lines,
    )


def console_consume(libs: Path, bootstrap: str, topic: str, count: int) -> list[JavaRecord]:
    """``kafka-console-consumer --from-beginning``: the first ``count`` records with partition and key."""
    out = _java(
        libs,
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--from-beginning",
        "--isolation-level",
        "read_committed",
        "--max-messages",
        str(count),
        "--timeout-ms",
        "30000",  # a bound, not a pace: it exits once `count` records were printed
        "--property",
        "print.partition=true",
        "--property",
        "print.key=true",
        "--property",
        f"key.separator={SEPARATOR}",
    )
    records = []
    for line in out.splitlines():
        partition, key, value = line.split(SEPARATOR, 2)
        records.append(JavaRecord(int(partition.removeprefix("Partition:")), key, value))
    return records
