"""The local stack's lifecycle: up, down and status of a real Kafka broker and Redis 8 + RediSearch.

Both run as our own background processes on loopback, with pids, logs and data under
``settings.dev_state_dir``. A second ``up`` starts nothing twice; ``down`` stops exactly what ``up``
started. A test session gets an isolated stack by passing another state dir and free ports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from simstream.devstack import kafka, redis_server
from simstream.devstack.errors import DevStackError
from simstream.devstack.layout import LOOPBACK, StackLayout
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


def up(
    settings: Settings, *, progress: Progress = print, services: Sequence[ServiceName] = ALL_SERVICES
) -> list[ServiceStatus]:
    """Start the services that are not running yet and wait until each answers; idempotent."""
    layout = StackLayout.from_settings(settings)
    layout.create()
    wanted = _unique(services)
    to_start: list[ServiceName] = []
    for name in wanted:
        pid = running_pid(layout.pid_file(name), _identity(name, layout), remove_stale=True)
        pid = pid if pid is not None else _adopt(name, layout)
        if pid is None:
            to_start.append(name)
        else:
            progress(f"{name}: already running (pid {pid}) at {_endpoint(name, settings)}")
    # Check every port before fetching or starting anything, so a clash fails fast and changes nothing.
    ensure_ports_free({field: port for name in to_start for field, port in _ports(name, settings).items()})
    if to_start:
        _start_all(to_start, settings, layout, progress)
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


def format_status(statuses: Sequence[ServiceStatus]) -> str:
    """One line per service, for the CLI."""
    lines = []
    for item in statuses:
        state = f"running (pid {item.pid})" if item.running else "stopped"
        version = item.version or "-"
        lines.append(f"{item.name:<6} {state:<22} {item.endpoint:<28} {version:<8} {item.detail}")
    return "\n".join(lines)


# --- starting -------------------------------------------------------------------------------------


def _start_all(names: list[ServiceName], settings: Settings, layout: StackLayout, progress: Progress) -> None:
    # Concurrently: the JVM start and Redis start (or the two first-run downloads) overlap.
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures = {name: pool.submit(_start_one, name, settings, layout, progress) for name in names}
        failures = {name: exc for name, future in futures.items() if (exc := future.exception()) is not None}
    if not failures:
        return
    # All or nothing: a half-started stack would only confuse the next `up`.
    for name in names:
        if name not in failures:
            _stop_one(name, settings, layout, progress)
    for exc in failures.values():
        if not isinstance(exc, DevStackError):
            raise DevStackError(f"the local stack failed to start: {exc!r}") from exc
    if len(failures) == 1:
        raise next(iter(failures.values()))
    raise DevStackError("\n\n".join(str(exc) for exc in failures.values()))


def _start_one(name: ServiceName, settings: Settings, layout: StackLayout, progress: Progress) -> None:
    prepare = _prepare_kafka if name == "kafka" else _prepare_redis
    argv = prepare(settings, layout, progress)
    log_file = layout.log_file(name)
    progress(f"{name}: starting on {_endpoint(name, settings)} (log {log_file})")
    started = time.monotonic()
    pid = spawn(argv, log_file=log_file, pid_file=layout.pid_file(name), cwd=_working_dir(name, layout))
    # The readiness deadline starts after any first-run download, which may legitimately take long.
    deadline = started + settings.dev_start_timeout_s
    try:
        _wait_ready(name, settings, deadline=deadline, still_running=lambda: is_alive(pid))
    except DevStackError as exc:
        terminate(pid, timeout_s=settings.dev_stop_timeout_s)
        layout.pid_file(name).unlink(missing_ok=True)
        tails = "\n".join(f"--- last lines of {log}:\n{log_tail(log)}" for log in _service_logs(name, layout))
        raise DevStackError(
            f"{name} did not become ready within {settings.dev_start_timeout_s:g} s ({exc})\n{tails}"
        ) from exc
    progress(f"{name}: ready (pid {pid}) in {time.monotonic() - started:.1f} s")


def _adopt(name: ServiceName, layout: StackLayout) -> int | None:
    """Our process still running after its pid file was lost: record it again instead of
    failing on its port as if a stranger held it."""
    found = find_by_identity(_identity(name, layout))
    if len(found) != 1:
        return None
    layout.pid_file(name).write_text(f"{found[0]}\n", encoding="ascii")
    return found[0]


def _prepare_kafka(settings: Settings, layout: StackLayout, progress: Progress) -> list[str]:
    libs = kafka.ensure_jars(
        cache_dir=layout.kafka_cache_dir, kafka_version=settings.dev_kafka_version, progress=progress
    )
    sasl = _kafka_sasl_listener(settings)
    if sasl is not None:
        progress(f"kafka: SASL_PLAINTEXT (PLAIN) listener for user {sasl.username!r} on {LOOPBACK}:{sasl.port}")
    log4j = kafka.write_config(
        layout, port=settings.dev_kafka_port, controller_port=settings.dev_kafka_controller_port, sasl=sasl
    )
    kafka.format_storage_once(layout, libs)
    return kafka.broker_command(layout, libs, log4j)


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
        workers=settings.dev_redis_search_workers,
        acl_file=redis_server.write_acl_file(layout, user) if user is not None else None,
    )


def _wait_ready(name: ServiceName, settings: Settings, *, deadline: float, still_running: Callable[[], bool]) -> None:
    if name == "kafka":
        kafka.wait_ready(_endpoint(name, settings), deadline=deadline, still_running=still_running)
    else:
        redis_server.wait_ready(
            settings.dev_redis_port, deadline=deadline, still_running=still_running, user=_acl_user(settings)
        )


# --- stopping and status --------------------------------------------------------------------------


def _stop_one(name: ServiceName, settings: Settings, layout: StackLayout, progress: Progress) -> None:
    identity = _identity(name, layout)
    pid_file = layout.pid_file(name)
    pids = set(find_by_identity(identity))  # also finds a process whose pid file was lost
    recorded = read_pid(pid_file)
    if recorded is not None and recorded not in pids:
        progress(f"{name}: removing stale pid file (pid {recorded} is not ours or not running)")
    for pid in sorted(pids):
        progress(f"{name}: stopping pid {pid}")
        stop(pid, identity, timeout_s=settings.dev_stop_timeout_s)
    pid_file.unlink(missing_ok=True)
    if not pids:
        progress(f"{name}: not running")


def _status_one(name: ServiceName, settings: Settings, layout: StackLayout) -> ServiceStatus:
    endpoint = _endpoint(name, settings)
    pid = running_pid(layout.pid_file(name), _identity(name, layout), remove_stale=False)
    log = f"log {_service_logs(name, layout)[-1]}"
    if pid is None:
        return ServiceStatus(name=name, running=False, pid=None, endpoint=endpoint, version=None, detail="not running")
    if name == "kafka":
        libs = kafka.libs_of(process_cmdline(pid) or [])
        version = kafka.broker_version(libs) if libs is not None else None
        answering = kafka.answers_metadata(endpoint, timeout_s=2.0)
        detail = f"{'answering' if answering else 'NOT answering'} metadata requests; {log}"
        return ServiceStatus(name=name, running=True, pid=pid, endpoint=endpoint, version=version, detail=detail)
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


# --- per-service facts ----------------------------------------------------------------------------


def _identity(name: ServiceName, layout: StackLayout) -> ProcessIdentity:
    """Paths unique to this state folder: a pid that carries them is ours."""
    if name == "kafka":
        return ProcessIdentity(argument=str(layout.kafka_config))
    return ProcessIdentity(executable_name="redis-server", cwd=layout.redis_data_dir)


def _working_dir(name: ServiceName, layout: StackLayout) -> Path:
    # Redis starts in its data dir, so its identity (cwd) holds from the first instant, before it reads --dir.
    return layout.state_dir if name == "kafka" else layout.redis_data_dir


def _endpoint(name: ServiceName, settings: Settings) -> str:
    if name == "kafka":
        return f"{LOOPBACK}:{settings.dev_kafka_port}"
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


def _ports(name: ServiceName, settings: Settings) -> dict[str, int]:
    if name == "kafka":
        ports = {
            "dev_kafka_port": settings.dev_kafka_port,
            "dev_kafka_controller_port": settings.dev_kafka_controller_port,
        }
        if settings.dev_kafka_sasl_port is not None:
            ports["dev_kafka_sasl_port"] = settings.dev_kafka_sasl_port
        return ports
    return {"dev_redis_port": settings.dev_redis_port}


def _service_logs(name: ServiceName, layout: StackLayout) -> list[Path]:
    # Kafka writes server.log through log4j; its stdout log holds the storage format and JVM-level failures.
    if name == "kafka":
        return [layout.log_file(name), layout.logs_dir / "kafka" / "server.log"]
    return [layout.log_file(name)]


def _unique(services: Sequence[ServiceName]) -> list[ServiceName]:
    unknown = [name for name in services if name not in ALL_SERVICES]
    if unknown:
        raise DevStackError(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(ALL_SERVICES)}")
    return list(dict.fromkeys(services))
