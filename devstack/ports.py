"""Loopback port checks: is a port taken, and which free ports can a throwaway stack use."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from contextlib import ExitStack

from simstream.devstack.errors import DevStackError
from simstream.devstack.layout import LOOPBACK


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when a listener holds the port. SO_REUSEADDR, as Kafka and Redis set it, ignores TIME_WAIT."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def ensure_ports_free(ports: Iterable[tuple[str, int]]) -> None:
    """ports pairs a settings field name with its port, so the message names the knob to change."""
    for field, port in ports:
        if port_in_use(port):
            raise DevStackError(
                f"port {port} ({field}) is already in use by another process; stop it or set "
                f"SIMSTREAM_{field.upper()} to a free port"
            )


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Distinct ports the OS reports free now (held together, so no two are the same)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        ports = [int(sock.getsockname()[1]) for sock in sockets]
    if len(set(ports)) != count:
        raise DevStackError(f"could not find {count} distinct free ports")
    return ports
