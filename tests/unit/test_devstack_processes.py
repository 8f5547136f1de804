"""Pid files, process identity, stale pids, port clashes: the devstack's bookkeeping without servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simstream.devstack import stack
from simstream.devstack.errors import DevStackError
from simstream.devstack.ports import ensure_ports_free, free_ports, port_in_use
from simstream.devstack.processes import ProcessIdentity, find_by_identity, is_alive, running_pid, spawn, stop
from simstream.schemas.settings import Settings

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[tuple[int, ProcessIdentity]]:
    marker = str(tmp_path / "marker")
    pid = spawn([*SLEEPER, marker], log_file=tmp_path / "s.log", pid_file=tmp_path / "s.pid", cwd=tmp_path)
    yield pid, ProcessIdentity(argument=marker)
    if is_alive(pid):
        os.killpg(pid, 9)
        is_alive(pid)  # reaps the zombie


def _settings(tmp_path: Path, *, redis_port: int | None = None, controller_port: int | None = None) -> Settings:
    free_kafka, free_controller, free_redis = free_ports(3)
    return Settings(
        dev_state_dir=tmp_path / "state",
        dev_kafka_port=free_kafka,
        dev_kafka_controller_port=controller_port or free_controller,
        dev_redis_port=redis_port or free_redis,
    )


def test_a_listening_port_is_in_use_and_a_free_one_is_not(listening_port: int) -> None:
    assert port_in_use(listening_port)
    (free,) = free_ports(1)
    assert not port_in_use(free)


def test_port_clash_names_the_port_and_the_setting(listening_port: int) -> None:
    with pytest.raises(DevStackError, match=rf"port {listening_port} \(dev_redis_port\) is already in use"):
        ensure_ports_free([("dev_kafka_port", free_ports(1)[0]), ("dev_redis_port", listening_port)])


def test_up_fails_on_a_taken_port_before_starting_anything(tmp_path: Path, listening_port: int) -> None:
    settings = _settings(tmp_path, controller_port=listening_port)
    with pytest.raises(DevStackError, match=rf"port {listening_port} \(dev_kafka_controller_port\)"):
        stack.up(settings, progress=lambda _: None)
    assert list((settings.dev_state_dir / "pids").iterdir()) == []


def test_our_spawned_process_is_recognised_and_stopped(tmp_path: Path, sleeper: tuple[int, ProcessIdentity]) -> None:
    pid, identity = sleeper
    assert running_pid(tmp_path / "s.pid", identity, remove_stale=True) == pid
    assert os.getpgid(pid) == pid  # its own session and group: down can signal the whole group
    assert stop(pid, identity, timeout_s=10)
    assert not is_alive(pid)


def test_our_process_is_found_again_without_its_pid_file(tmp_path: Path, sleeper: tuple[int, ProcessIdentity]) -> None:
    pid, identity = sleeper
    (tmp_path / "s.pid").unlink()
    assert find_by_identity(identity) == [pid]
    assert find_by_identity(ProcessIdentity(argument=str(tmp_path / "other"))) == []


def test_identity_by_working_directory(tmp_path: Path, sleeper: tuple[int, ProcessIdentity]) -> None:
    pid, _ = sleeper
    assert ProcessIdentity(cwd=tmp_path).matches(pid, [])
    assert not ProcessIdentity(cwd=tmp_path / "elsewhere").matches(pid, [])


def test_a_pid_file_naming_a_foreign_process_is_stale(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(f"{os.getpid()}\n")  # alive, but not carrying our identity
    identity = ProcessIdentity(argument=str(tmp_path / "marker"))
    assert running_pid(pid_file, identity, remove_stale=False) is None
    assert pid_file.exists()
    assert not stop(os.getpid(), identity, timeout_s=1)  # never signals a process that is not ours
    assert running_pid(pid_file, identity, remove_stale=True) is None
    assert not pid_file.exists()


def test_a_pid_file_naming_a_dead_process_is_stale(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(finished.stdout.decode())
    assert running_pid(pid_file, ProcessIdentity(argument="anything"), remove_stale=True) is None
    assert not pid_file.exists()


def test_status_and_down_treat_stale_pid_files_as_not_running(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    pids = settings.dev_state_dir / "pids"
    pids.mkdir(parents=True)
    for name in ("kafka", "redis"):
        (pids / f"{name}.pid").write_text(f"{os.getpid()}\n")
    assert [item.running for item in stack.status(settings)] == [False, False]
    messages: list[str] = []
    stopped = stack.down(settings, progress=messages.append)
    assert [item.running for item in stopped] == [False, False]
    assert list(pids.iterdir()) == []
    assert sum("stale pid file" in line for line in messages) == 2
    assert is_alive(os.getpid())
