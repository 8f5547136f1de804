"""Where the local stack keeps its pids, logs and data, all under one state folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from simstream.schemas.settings import Settings

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class StackLayout:
    """Absolute paths, so the same path can be matched against a running process's command line."""

    state_dir: Path
    pids_dir: Path
    logs_dir: Path
    kafka_data_dir: Path
    kafka_config: Path
    redis_data_dir: Path
    kafka_cache_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> StackLayout:
        state = settings.dev_state_dir.expanduser().resolve()
        return cls(
            state_dir=state,
            pids_dir=state / "pids",
            logs_dir=state / "logs",
            kafka_data_dir=state / "kafka" / "data",
            kafka_config=state / "kafka" / "server.properties",
            redis_data_dir=state / "redis",
            kafka_cache_dir=kafka_cache_dir(settings),
        )

    def pid_file(self, service: str) -> Path:
        return self.pids_dir / f"{service}.pid"

    def log_file(self, service: str) -> Path:
        return self.logs_dir / f"{service}.log"

    def create(self) -> None:
        for folder in (self.pids_dir, self.logs_dir, self.kafka_data_dir, self.redis_data_dir):
            folder.mkdir(parents=True, exist_ok=True)


def kafka_cache_dir(settings: Settings) -> Path:
    """The jar cache lives outside the repo (per Kafka version) so clones and CI runs share one fetch."""
    if settings.dev_kafka_cache_dir is not None:
        return settings.dev_kafka_cache_dir.expanduser().resolve()
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (cache_home / "simstream" / f"kafka-{settings.dev_kafka_version}").resolve()
