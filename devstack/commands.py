"""Run a one-shot tool (Maven, pip, Kafka's StorageTool) with its output shown line by line."""

from __future__ import annotations

import collections
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from simstream.devstack.errors import DevStackError

_TAIL_LINES = 30
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run_visible(
    argv: Sequence[str],
    *,
    progress: Callable[[str], None],
    prefix: str,
    what: str,
    cwd: Path | None = None,
) -> None:
    """Stream each output line to progress; on failure raise with the last lines of output."""
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    try:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise DevStackError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    assert process.stdout is not None  # set by stdout=PIPE
    with process:
        for raw in process.stdout:
            line = _ANSI_ESCAPE.sub("", raw).rstrip()  # Maven colours some lines even in batch mode
            if not line:
                continue
            tail.append(line)
            progress(f"{prefix}{line}")
        code = process.wait()
    if code != 0:
        shown = "\n".join(tail)
        raise DevStackError(f"{what} failed (exit {code}); last output:\n{shown}")


def run_quiet(argv: Sequence[str], *, what: str, log_file: Path, timeout_s: float) -> None:
    """Append the tool's output to log_file; on failure raise with its tail."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        try:
            code = subprocess.run(
                list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s
            ).returncode
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DevStackError(f"{what}: {exc}") from exc
    if code != 0:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-_TAIL_LINES:]
        raise DevStackError(f"{what} failed (exit {code}); see {log_file}:\n" + "\n".join(lines))
