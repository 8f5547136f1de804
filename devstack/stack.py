"""The local stack's lifecycle: up, down and status of a real Kafka (one broker, or a KRaft cluster of
``dev_kafka_brokers`` nodes) and Redis 8 + RediSearch.

All run as our own background processes on loopback, with pids, logs and data under
``settings.dev_state_dir``. A second ``up`` starts nothing twice; ``down`` stops exactly what ``up``
started. A test session gets an isolated stack by passing another state dir and free ports.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from simstream.devstack import kafka, redis_server
from simstream.devstack.errors import DevStackError
from simstream.devstack.layout import LOOPBACK, KafkaNode, StackLayout
from simstream.devstack.ports import ensure_ports_free
from simstream.devstack.processes import (
    ProcessIdentity,
    find_by_identity,
    is_alive,
    log_tail,
    process_cmdline,
    read_pid,
    running_pid,
    spawn,
    stop,
    terminate,
)
from simstream.schemas.settings import Settings

__all__ = [
    "ALL_SERVICES",
    "DevStackError",
    "ServiceName",
    "ServiceStatus",
    "down",
    "format_status",
    "recorded_kafka_nodes",
    "status",
    "up",
]

ServiceName = Literal["kafka", "redis"]
ALL_SERVICES: tuple[ServiceName, ...] = ("kafka", "redis")
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    endpoint: str
    version: str | None
    detail: str
    # A Kafka cluster's nodes, one status each; the service's own row (endpoint: every node) covers them.
    members: tuple[ServiceStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class _Process:
    """One background process of a service: Redis, or one Kafka node."""

    label: str  # progress and status lines
    endpoint: str
    pid_file: Path
    identity: ProcessIdentity


def up(
    settings: Settings, *, progress: Progress = print, services: Sequence[ServiceName] = ALL_SERVICES
) -> list[ServiceStatus]:
    """Start the services that are not running yet and wait until each answers; idempotent."""
    layout = StackLayout.from_settings(settings)
    layout.create()
    wanted = _unique(services)
    # Per service, its processes not running yet: in a cluster, `up` starts only the nodes that are down.
    to_start: dict[ServiceName, list[_Process]] = {}
    for name in wanted:
        for process in _processes(name, settings, layout):
            pid = running_pid(process.pid_file, process.identity, remove_stale=True)
            pid = pid if pid is not None else _adopt(process)
            if pid is None:
                to_start.setdefault(name, []).append(process)
            else:
                progress(f"{process.label}: already running (pid {pid}) at {process.endpoint}")
    # Check every port before fetching or starting anything, so a clash fails fast and changes nothing.
    ensure_ports_free(
        [pair for name, processes in to_start.items() for pair in _ports(name, settings, layout, processes)]
    )
    if to_start:
        _start_all(to_start, settings, layout, progress)
    if "kafka" in wanted:
        layout.kafka_nodes_file.parent.mkdir(parents=True, exist_ok=True)
        layout.kafka_nodes_file.write_text(f"{len(layout.kafka_nodes)}\n", encoding="ascii")
    return status(settings, services=wanted)


def down(
    settings: Settings, *, progress: Progress = print, services: Sequence[ServiceName] = ALL_SERVICES
) -> list[ServiceStatus]:
    """Stop our processes by pid (SIGTERM, bounded wait, SIGKILL) and remove their pid files."""
    layout = StackLayout.from_settings(settings)
    wanted = _unique(services)
    with ThreadPoolExecutor(max_workers=len(wanted) or 1) as pool:
        for future in [pool.submit(_stop_one, name, settings, layout, progress) for name in wanted]:
            future.result()
    return status(settings, services=wanted)


def status(settings: Settings, *, services: Sequence[ServiceName] = ALL_SERVICES) -> list[ServiceStatus]:
    """What runs now: pids, endpoints, versions. Reads only; never starts or stops anything."""
    layout = StackLayout.from_settings(settings)
    return [_status_one(name, settings, layout) for name in _unique(services)]


def recorded_kafka_nodes(settings: Settings) -> int | None:
    """The node count of the Kafka that `up` last started in this state dir (None: never started)."""
    try:
        text = StackLayout.from_settings(settings).kafka_nodes_file.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def format_status(statuses: Sequence[ServiceStatus]) -> str:
    """One line per service (and one per Kafka node of a cluster, indented), for the CLI."""
    rows = [row for item in statuses for row in [(item, item.name), *((m, f"  {m.name}") for m in item.members)]]
    width = max([6, *(len(name) for _, name in rows)])
    return "\n".join(_status_line(item, name, width) for item, name in rows)


def _status_line(item: ServiceStatus, name: str, width: int) -> str:
    if item.running:
        state = f"running (pid {item.pid})" if item.pid is not None else "running"
    else:
        state = "degraded" if any(member.running for member in item.members) else "stopped"
    version = item.version or "-"
    return f"{name:<{width}} {state:<22} {item.endpoint:<28} {version:<8} {item.detail}"


# --- starting -------------------------------------------------------------------------------------


def _start_all(
    to_start: dict[ServiceName, list[_Process]], settings: Settings, layout: StackLayout, progress: Progress
) -> None:
    # Concurrently: the JVM start and Redis start (or the two first-run downloads) overlap.
    with ThreadPoolExecutor(max_workers=len(to_start)) as pool:
        futures = {
            name: pool.submit(_start_service, name, processes, settings, layout, progress)
            for name, processes in to_start.items()
        }
        failures = {name: exc for name, future in futures.items() if (exc := future.exception()) is not None}
    if not failures:
        return
    # All or nothing: a half-started stack would only confuse the next `up`.
    for name in to_start:
        if name not in failures:
            _stop_one(name, settings, layout, progress)
    for exc in failures.values():
        if not isinstance(exc, DevStackError):
            raise DevStackError(f"the local stack failed to start: {exc!r}") from exc
    if len(failures) == 1:
        raise next(iter(failures.values()))
    raise DevStackError("\n\n".join(str(exc) for exc in failures.values()))


def _start_service(
    name: ServiceName, processes: list[_Process], settings: Settings, layout: StackLayout, progress: Progress
) -> None:
    if name == "kafka":
        labels = {process.label for process in processes}
        nodes = [node for node in layout.kafka_nodes if node.service in labels]
        launches = _prepare_kafka(settings, layout, nodes, progress)
        _launch(launches, settings, cwd=layout.state_dir, progress=progress)
    else:
        (process,) = processes
        argv = _prepare_redis(settings, layout, progress)

        def ready(*, deadline: float, still_running: Callable[[], bool]) -> None:
            user = _acl_user(settings)
            redis_server.wait_ready(settings.dev_redis_port, deadline=deadline, still_running=still_running, user=user)

        log_file = layout.log_file(name)
        launch = _Launch(process, argv, log_file, (log_file,), ready)
        # Redis starts in its data dir, so its identity (cwd) holds from the first instant, before it reads --dir.
        _launch([launch], settings, cwd=layout.redis_data_dir, progress=progress)


@dataclass(frozen=True, slots=True)
class _Launch:
    process: _Process
    argv: list[str]
    log_file: Path
    logs: tuple[Path, ...]  # shown when it fails to start
    ready: _Ready


class _Ready(Protocol):
    def __call__(self, *, deadline: float, still_running: Callable[[], bool]) -> None:
        """Return once the process answers; raise DevStackError past the deadline or when it exits."""


def _launch(launches: list[_Launch], settings: Settings, *, cwd: Path, progress: Progress) -> None:
    """Start every process before waiting for any: a cluster node is ready only once a quorum runs."""
    started = time.monotonic()
    pids: list[int] = []
    for launch in launches:
        progress(f"{launch.process.label}: starting on {launch.process.endpoint} (log {launch.log_file})")
        pids.append(spawn(launch.argv, log_file=launch.log_file, pid_file=launch.process.pid_file, cwd=cwd))
    # The readiness deadline starts after any first-run download, which may legitimately take long.
    deadline = started + settings.dev_start_timeout_s
    for launch, pid in zip(launches, pids, strict=True):
        try:
            launch.ready(deadline=deadline, still_running=functools.partial(is_alive, pid))
        except DevStackError as exc:
            for other, spawned in zip(launches, pids, strict=True):
                terminate(spawned, timeout_s=settings.dev_stop_timeout_s)
                other.process.pid_file.unlink(missing_ok=True)
            tails = "\n".join(f"--- last lines of {log}:\n{log_tail(log)}" for log in launch.logs)
            raise DevStackError(
                f"{launch.process.label} did not become ready within {settings.dev_start_timeout_s:g} s "
                f"({exc})\n{tails}"
            ) from exc
        progress(f"{launch.process.label}: ready (pid {pid}) in {time.monotonic() - started:.1f} s")


def _adopt(process: _Process) -> int | None:
    """Our process still running after its pid file was lost: record it again instead of
    failing on its port as if a stranger held it."""
    found = find_by_identity(process.identity)
    if len(found) != 1:
        return None
    process.pid_file.write_text(f"{found[0]}\n", encoding="ascii")
    return found[0]


def _prepare_kafka(
    settings: Settings, layout: StackLayout, nodes: list[KafkaNode], progress: Progress
) -> list[_Launch]:
    libs = kafka.ensure_jars(
        cache_dir=layout.kafka_cache_dir, kafka_version=settings.dev_kafka_version, progress=progress
    )
    sasl = _kafka_sasl_listener(settings)
    if sasl is not None:
        progress(f"kafka: SASL_PLAINTEXT (PLAIN) listener for user {sasl.username!r} on {LOOPBACK}:{sasl.port}")
    log4j = [kafka.write_config(layout, node, sasl=sasl) for node in nodes]
    # Each format is a JVM start of its own: overlap them.
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        list(pool.map(lambda node: kafka.format_storage_once(layout, node, libs), nodes))
    return [
        _Launch(
            process=_node_process(node),
            argv=kafka.broker_command(layout, node, libs, config),
            log_file=node.log_file,
            # Kafka writes server.log through log4j; its stdout log holds the storage format and JVM-level failures.
            logs=(node.log_file, node.logs_dir / "server.log"),
            ready=functools.partial(kafka.wait_ready, node),
        )
        for node, config in zip(nodes, log4j, strict=True)
    ]


def _prepare_redis(settings: Settings, layout: StackLayout, progress: Progress) -> list[str]:
    binaries = redis_server.ensure_binaries(progress)
    user = _acl_user(settings)
    if user is not None:
        progress(f"redis: ACL user {user.name!r} on, the passwordless default user off")
    return redis_server.server_command(
        binaries,
        layout,
        port=settings.dev_redis_port,
        aof=settings.dev_redis_aof,
        appendfsync=settings.dev_redis_appendfsync,
        workers=settings.dev_redis_search_workers,
        acl_file=redis_server.write_acl_file(layout, user) if user is not None else None,
    )


# --- stopping and status --------------------------------------------------------------------------


def _stop_one(name: ServiceName, settings: Settings, layout: StackLayout, progress: Progress) -> None:
    processes = _processes(name, settings, layout)
    # A cluster's nodes stop together: each one's controlled shutdown needs the others' quorum.
    with ThreadPoolExecutor(max_workers=len(processes)) as pool:
        for future in [pool.submit(_stop_process, process, settings, progress) for process in processes]:
            future.result()


def _stop_process(process: _Process, settings: Settings, progress: Progress) -> None:
    pids = set(find_by_identity(process.identity))  # also finds a process whose pid file was lost
    recorded = read_pid(process.pid_file)
    if recorded is not None and recorded not in pids:
        progress(f"{process.label}: removing stale pid file (pid {recorded} is not ours or not running)")
    for pid in sorted(pids):
        progress(f"{process.label}: stopping pid {pid}")
        stop(pid, process.identity, timeout_s=settings.dev_stop_timeout_s)
    process.pid_file.unlink(missing_ok=True)
    if not pids:
        progress(f"{process.label}: not running")


def _status_one(name: ServiceName, settings: Settings, layout: StackLayout) -> ServiceStatus:
    if name == "kafka":
        return _kafka_status(layout)
    (process,) = _processes(name, settings, layout)
    endpoint = _endpoint(name, settings, layout)
    pid = running_pid(process.pid_file, process.identity, remove_stale=False)
    log = f"log {layout.log_file(name)}"
    if pid is None:
        return ServiceStatus(name=name, running=False, pid=None, endpoint=endpoint, version=None, detail="not running")
    versions = redis_server.query_versions(settings.dev_redis_port, _acl_user(settings))
    if versions is None:
        return ServiceStatus(
            name=name, running=True, pid=pid, endpoint=endpoint, version=None, detail=f"NOT answering; {log}"
        )
    modules = ", ".join(f"{module} {version}" for module, version in sorted(versions.modules.items()))
    return ServiceStatus(
        name=name,
        running=True,
        pid=pid,
        endpoint=endpoint,
        version=versions.server,
        detail=f"{modules}; {log}",
    )


def _kafka_status(layout: StackLayout) -> ServiceStatus:
    """One node: its own row, as ever. A cluster: a row for the whole (running only when every node
    is) with the bootstrap list as endpoint, and a row per node."""
    members = [_kafka_node_status(node) for node in layout.kafka_nodes]
    if len(members) == 1:
        return members[0]
    up = [member for member in members if member.running]
    bootstrap = layout.kafka_bootstrap
    answering = bool(up) and kafka.answers_metadata(bootstrap, timeout_s=2.0)
    detail = (
        f"{len(up)} of {len(members)} nodes running; {'answering' if answering else 'NOT answering'} metadata requests"
    )
    return ServiceStatus(
        name="kafka",
        running=len(up) == len(members),
        pid=None,
        endpoint=bootstrap,
        version=next((member.version for member in up if member.version), None),
        detail=detail,
        members=tuple(members),
    )


def _kafka_node_status(node: KafkaNode) -> ServiceStatus:
    process = _node_process(node)
    pid = running_pid(process.pid_file, process.identity, remove_stale=False)
    if pid is None:
        return ServiceStatus(
            name=node.service, running=False, pid=None, endpoint=node.endpoint, version=None, detail="not running"
        )
    libs = kafka.libs_of(process_cmdline(pid) or [])
    version = kafka.broker_version(libs) if libs is not None else None
    answering = kafka.answers_metadata(node.endpoint, timeout_s=2.0, node=node)
    detail = f"{'answering' if answering else 'NOT answering'} metadata requests; log {node.logs_dir / 'server.log'}"
    return ServiceStatus(
        name=node.service, running=True, pid=pid, endpoint=node.endpoint, version=version, detail=detail
    )


# --- per-service facts ----------------------------------------------------------------------------


def _processes(name: ServiceName, settings: Settings, layout: StackLayout) -> list[_Process]:
    """Paths unique to this state folder identify our processes: a pid that carries them is ours."""
    if name == "kafka":
        return [_node_process(node) for node in layout.kafka_nodes]
    identity = ProcessIdentity(executable_name="redis-server", cwd=layout.redis_data_dir)
    endpoint = _endpoint(name, settings, layout)
    return [_Process(label=name, endpoint=endpoint, pid_file=layout.pid_file(name), identity=identity)]


def _node_process(node: KafkaNode) -> _Process:
    identity = ProcessIdentity(argument=str(node.config))
    return _Process(label=node.service, endpoint=node.endpoint, pid_file=node.pid_file, identity=identity)


def _endpoint(name: ServiceName, settings: Settings, layout: StackLayout) -> str:
    if name == "kafka":
        return layout.kafka_bootstrap
    return redis_server.url(settings.dev_redis_port)


def _acl_user(settings: Settings) -> redis_server.AclUser | None:
    if settings.dev_redis_acl_user is None or settings.dev_redis_acl_password is None:
        return None
    return redis_server.AclUser(name=settings.dev_redis_acl_user, password=settings.dev_redis_acl_password)


def _kafka_sasl_listener(settings: Settings) -> kafka.SaslListener | None:
    port, username, password = (
        settings.dev_kafka_sasl_port,
        settings.dev_kafka_sasl_username,
        settings.dev_kafka_sasl_password,
    )
    if port is None or username is None or password is None:
        return None
    return kafka.SaslListener(port=port, username=username, password=password)


def _ports(
    name: ServiceName, settings: Settings, layout: StackLayout, processes: list[_Process]
) -> list[tuple[str, int]]:
    """(settings field, port) of the processes about to start, so a clash names the knob to change."""
    if name == "redis":
        return [("dev_redis_port", settings.dev_redis_port)]
    labels = {process.label for process in processes}
    ports: list[tuple[str, int]] = []
    for node in layout.kafka_nodes:
        if node.service not in labels:
            continue
        first = node.node_id == 1
        ports.append(("dev_kafka_port" if first else "dev_kafka_peer_ports", node.port))
        ports.append(
            ("dev_kafka_controller_port" if first else "dev_kafka_peer_controller_ports", node.controller_port)
        )
    if settings.dev_kafka_sasl_port is not None:
        ports.append(("dev_kafka_sasl_port", settings.dev_kafka_sasl_port))
    return ports


def _unique(services: Sequence[ServiceName]) -> list[ServiceName]:
    unknown = [name for name in services if name not in ALL_SERVICES]
    if unknown:
        raise DevStackError(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(ALL_SERVICES)}")
    return list(dict.fromkeys(services))
