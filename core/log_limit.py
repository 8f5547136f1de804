"""Rate-limited logging for chatty client libraries (librdkafka retries a dead broker many times a second).

A :class:`RateLimitFilter` lets through at most ``burst`` similar lines per ``interval_s`` (similar: the
same logger, level and message once its digits are blanked, so "after 0ms" and "after 3ms" are one
line); the last line let through says that similar ones are now held back, and the first line of the
next interval says how many were.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

KAFKA_LOGGER_NAME = "simstream.kafka"
_DIGITS = re.compile(r"\d+")
# Distinct kinds of line remembered at once; the least recently seen is forgotten first.
_MAX_KINDS = 256


@dataclass(slots=True)
class _Window:
    started: float
    passed: int = 0
    suppressed: int = 0


class RateLimitFilter(logging.Filter):
    def __init__(
        self, *, burst: int = 3, interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        if burst < 1 or interval_s <= 0:
            raise ValueError("burst must be >= 1 and interval_s > 0")
        self._burst = burst
        self._interval_s = interval_s
        self._clock = clock
        self._windows: OrderedDict[tuple[str, int, str], _Window] = OrderedDict()
        self._lock = threading.Lock()  # clients' logs are served from whichever thread polls them

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            return self._admit(record)

    def _admit(self, record: logging.LogRecord) -> bool:
        now = self._clock()
        kind = (record.name, record.levelno, _DIGITS.sub("#", record.getMessage()))
        window = self._windows.get(kind)
        notes: list[str] = []
        if window is None or now - window.started >= self._interval_s:
            if window is not None and window.suppressed:
                notes.append(f"{window.suppressed} similar lines suppressed in the last {now - window.started:.0f} s")
            window = _Window(started=now)
        self._windows[kind] = window
        self._windows.move_to_end(kind)
        while len(self._windows) > _MAX_KINDS:
            self._windows.popitem(last=False)
        if window.passed >= self._burst:
            window.suppressed += 1
            return False
        window.passed += 1
        if window.passed == self._burst:
            notes.append(f"similar lines suppressed for {self._interval_s:.0f} s")
        if notes:
            # Rewritten in place: the record belongs to this logger call alone.
            record.msg, record.args = f"{record.getMessage()} ({'; '.join(notes)})", None
        return True


def kafka_logger() -> logging.Logger:
    """The logger that Kafka clients write librdkafka's lines to, rate-limited (filter added once)."""
    logger = logging.getLogger(KAFKA_LOGGER_NAME)
    if not any(isinstance(existing, RateLimitFilter) for existing in logger.filters):
        logger.addFilter(RateLimitFilter())
    return logger
