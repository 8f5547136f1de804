"""The devstack lifecycle on its own throwaway stack: idempotent up, versions in status, clean down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simstream.devstack import stack
from simstream.devstack.ports import free_ports
from simstream.devstack.processes import is_alive
from simstream.schemas.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def throwaway_settings(tmp_path: Path) -> Iterator[Settings]:
    kafka_port, controller_port, redis_port = free_ports(3)
    settings = Settings(
        dev_state_dir=tmp_path / "state",
        dev_kafka_port=kafka_port,
        dev_kafka_controller_port=controller_port,
        dev_redis_port=redis_port,
        dev_stop_timeout_s=15.0,
    )
    try:
        yield settings
    finally:
        stack.down(settings, progress=lambda _: None)  # a failed assertion must not leak processes


def test_up_is_idempotent_and_down_leaves_no_process(throwaway_settings: Settings) -> None:
    first = {item.name: item for item in stack.up(throwaway_settings, progress=lambda _: None)}
    assert {name: item.running for name, item in first.items()} == {"kafka": True, "redis": True}
    assert first["kafka"].version == throwaway_settings.dev_kafka_version
    assert (first["redis"].version or "").startswith("8.")
    assert "search 2." in first["redis"].detail
    assert "answering metadata" in first["kafka"].detail

    messages: list[str] = []
    second = {item.name: item for item in stack.up(throwaway_settings, progress=messages.append)}
    assert {name: item.pid for name, item in second.items()} == {name: item.pid for name, item in first.items()}
    assert sorted(line.split(":")[0] for line in messages if "already running" in line) == ["kafka", "redis"]

    stopped = stack.down(throwaway_settings, progress=lambda _: None)
    assert [item.running for item in stopped] == [False, False]
    pids = [item.pid for item in first.values() if item.pid is not None]
    assert len(pids) == 2
    assert not any(is_alive(pid) for pid in pids)
    assert list((throwaway_settings.dev_state_dir / "pids").iterdir()) == []
