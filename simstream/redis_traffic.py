"""Count the Redis traffic of this process: round trips and commands by name (for the benchmarks).

While :func:`count_redis_traffic` is active, redis-py's connection class is patched process-wide:
every ``send_packed_command`` is one round trip (a pipeline is one, a single command one: redis-py
writes a whole pipeline, then reads every reply), and every command packed for sending is counted
under its name (``FT.SEARCH``, ``EVALSHA``, ``HMGET``...). redis-py packs a single command inside
``send_command`` and a pipeline in ``pack_commands``; ``pack_command`` is counted too, once (a
thread-local guard keeps a packer that calls another from counting twice). Every thread's traffic
counts (the benchmarks run the worker in a thread), including connection set-up (HELLO, AUTH,
CLIENT SETINFO) and health-check PINGs. The originals are restored on exit; contexts do not nest.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from redis.connection import AbstractConnection

_PATCHED = ("send_packed_command", "send_command", "pack_command", "pack_commands")
_active_lock = threading.Lock()
_active = False


@dataclass
class RedisTraffic:
    """Counters filled while the context is active; read them after it (or under ``lock``)."""

    round_trips: int = 0
    commands: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def total_commands(self) -> int:
        return sum(self.commands.values())

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy: round trips, total commands, and commands by name (most frequent first)."""
        with self.lock:
            return {
                "round_trips": self.round_trips,
                "commands": self.total_commands,
                "by_command": dict(self.commands.most_common()),
            }

    def _trip(self) -> None:
        with self.lock:
            self.round_trips += 1

    def _count(self, names: Iterable[str]) -> None:
        with self.lock:
            self.commands.update(names)


def command_name(args: tuple[Any, ...] | list[Any]) -> str:
    """The upper-case name of a packed command (its first argument; ``b"ft.search"`` -> ``FT.SEARCH``)."""
    if not args:
        return "?"
    head = args[0]
    text = bytes(head).decode(errors="replace") if isinstance(head, bytes | bytearray | memoryview) else str(head)
    return text.upper()


@contextmanager
def count_redis_traffic() -> Iterator[RedisTraffic]:
    """Count every Redis round trip and command this process makes while active (see module doc)."""
    global _active
    with _active_lock:
        if _active:
            raise RuntimeError("count_redis_traffic is already active")
        _active = True
    traffic = RedisTraffic()
    packing = threading.local()  # depth of our packing wrappers on this thread
    originals = {name: AbstractConnection.__dict__[name] for name in _PATCHED}

    def counting(original: Any, names_of: Any) -> Any:
        def wrapper(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
            depth = getattr(packing, "depth", 0)
            if depth == 0:
                traffic._count(names_of(args))
            packing.depth = depth + 1
            try:
                return original(self, *args, **kwargs)
            finally:
                packing.depth = depth

        return wrapper

    send_packed = originals["send_packed_command"]
    pack_many = counting(originals["pack_commands"], lambda args: [command_name(c) for c in args[0]])

    def pack_commands(self: AbstractConnection, commands: Iterable[Any]) -> Any:
        return pack_many(self, list(commands))  # counted, then packed: a generator is read once

    def send_packed_command(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        traffic._trip()
        return send_packed(self, *args, **kwargs)

    patches: dict[str, Any] = {
        "send_packed_command": send_packed_command,
        "send_command": counting(originals["send_command"], lambda args: [command_name(args)]),
        "pack_command": counting(originals["pack_command"], lambda args: [command_name(args)]),
        "pack_commands": pack_commands,
    }
    try:
        for name, patch in patches.items():
            setattr(AbstractConnection, name, patch)
        yield traffic
    finally:
        for name, original in originals.items():
            setattr(AbstractConnection, name, original)
        with _active_lock:
            _active = False
