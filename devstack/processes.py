"""Our own background processes: start detached, find again by pid file, stop by process group.

A pid file alone is not proof: after a reboot or a crash the pid may belong to anyone. A pid counts
as ours only when the process is alive (not a zombie) and matches its ProcessIdentity: an absolute
path inside our state folder, found in its command line or as its working directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from simstream.devstack.errors import DevStackError

_POLL_S = 0.1


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """What makes a process ours. Redis rewrites its argv into a title, so it is known by its
    executable name and working directory (its --dir) instead of by an argument."""

    argument: str | None = None
    executable_name: str | None = None
    cwd: Path | None = None

    def matches(self, pid: int, cmdline: list[str]) -> bool:
        if self.argument is not None and self.argument not in cmdline:
            return False
        if self.executable_name is not None and _link(pid, "exe").name != self.executable_name:
            return False
        return self.cwd is None or _link(pid, "cwd") == self.cwd


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DevStackError(f"cannot read pid file {pid_file}: {exc}") from exc
    return int(text) if text.isdigit() else None


def process_cmdline(pid: int) -> list[str] | None:
    """The argv of a live process, or None when it is gone or already a zombie."""
    _reap_if_our_child(pid)
    return _read_cmdline(pid)


def _read_cmdline(pid: int) -> list[str] | None:
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text(encoding="utf-8", errors="replace")
        raw = (proc / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The state letter follows the ")" that closes the command name, which may itself hold spaces.
    if stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"]):
        return None
    return [part.decode("utf-8", errors="replace") for part in raw.split(b"\0") if part]


def is_alive(pid: int) -> bool:
    return process_cmdline(pid) is not None


def is_our_process(pid: int, identity: ProcessIdentity) -> bool:
    cmdline = process_cmdline(pid)
    return cmdline is not None and identity.matches(pid, cmdline)


def running_pid(pid_file: Path, identity: ProcessIdentity, *, remove_stale: bool) -> int | None:
    """The pid of our running process; a pid file naming a dead or foreign process is stale."""
    pid = read_pid(pid_file)
    if pid is not None and is_our_process(pid, identity):
        return pid
    if remove_stale:
        pid_file.unlink(missing_ok=True)
    return None


def find_by_identity(identity: ProcessIdentity) -> list[int]:
    """Pids of live processes carrying our identity argument, for when a pid file was lost."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        # No reaping here: the scan must not steal the exit status of unrelated children of this process.
        cmdline = _read_cmdline(int(entry.name)) if entry.name.isdigit() else None
        if cmdline is not None and identity.matches(int(entry.name), cmdline):
            found.append(int(entry.name))
    return found


def spawn(argv: Sequence[str], *, log_file: Path, pid_file: Path, cwd: Path) -> int:
    """Start argv detached from our terminal and session, so it outlives the CLI that started it."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        try:
            process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise DevStackError(f"cannot start {argv[0]}: {exc}") from exc
    pid_file.write_text(f"{process.pid}\n", encoding="ascii")
    return process.pid


def stop(pid: int, identity: ProcessIdentity, *, timeout_s: float) -> bool:
    """SIGTERM the process group, wait bounded, then SIGKILL it. False when it was not ours or not running."""
    if not is_our_process(pid, identity):
        return False
    terminate(pid, timeout_s=timeout_s)
    return True


def terminate(pid: int, *, timeout_s: float) -> None:
    """Stop a process group we just spawned ourselves (no identity check needed)."""
    _signal_group(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout_s):
        return
    _signal_group(pid, signal.SIGKILL)
    if not _wait_gone(pid, 10.0):
        raise DevStackError(f"process {pid} survived SIGKILL")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # start_new_session made the process a group leader: its pgid is its pid, and children die with it.
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise DevStackError(f"not allowed to signal process group {pid}: {exc}") from exc


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


def _link(pid: int, name: str) -> Path:
    """/proc/<pid>/exe or cwd; an empty path when unreadable (another user's process is not ours)."""
    try:
        return Path(os.readlink(f"/proc/{pid}/{name}"))
    except OSError:
        return Path()


def _reap_if_our_child(pid: int) -> None:
    # A child of this very process (tests run up and down in one interpreter) stays a zombie until reaped.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def log_tail(log_file: Path, lines: int = 30) -> str:
    try:
        text = log_file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {log_file})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"(empty log at {log_file})"
