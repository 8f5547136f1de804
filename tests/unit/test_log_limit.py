"""The rate-limit filter that keeps librdkafka's retry lines from flooding the log."""

from __future__ import annotations

import logging

import pytest

from simstream.core.log_limit import KAFKA_LOGGER_NAME, RateLimitFilter, kafka_logger


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(message: str, *args: object, level: int = logging.ERROR, name: str = "simstream.kafka") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, None)


def refused(after_ms: int) -> logging.LogRecord:
    # What confluent-kafka hands to the logger for a dead broker: facility, client name, text.
    text = f"127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after {after_ms}ms)"
    return record("%s [%s] %s", "FAIL", "rdkafka#consumer-1", text)


def test_similar_lines_pass_up_to_the_burst_then_are_suppressed_until_the_interval_ends() -> None:
    clock = Clock()
    limit = RateLimitFilter(burst=3, interval_s=30.0, clock=clock)
    passed = []
    for i in range(200):  # digits differ from line to line: still one kind of line
        clock.now += 0.1
        line = refused(i)
        if limit.filter(line):
            passed.append(line.getMessage())
    assert len(passed) == 3
    assert passed[-1].endswith("(similar lines suppressed for 30 s)")
    clock.now += 30.0
    line = refused(7)
    assert limit.filter(line)
    assert "(197 similar lines suppressed in the last 50 s)" in line.getMessage()


def test_different_lines_levels_and_loggers_are_limited_separately() -> None:
    limit = RateLimitFilter(burst=1, interval_s=60.0, clock=Clock())
    assert limit.filter(record("broker down"))
    assert not limit.filter(record("broker down"))
    assert limit.filter(record("broker down", level=logging.WARNING))
    assert limit.filter(record("broker down", name="simstream.other"))
    assert limit.filter(record("group rebalanced"))


def test_lines_below_the_burst_are_left_untouched() -> None:
    limit = RateLimitFilter(burst=3, interval_s=60.0, clock=Clock())
    line = record("%s joined", "member-1")
    assert limit.filter(line)
    assert (line.msg, line.args) == ("%s joined", ("member-1",))


def test_the_kinds_remembered_are_bounded() -> None:
    limit = RateLimitFilter(burst=1, interval_s=60.0, clock=Clock())
    for i in range(1000):
        limit.filter(record(f"topic-{'x' * (i % 7)}-{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}"))
    assert len(limit._windows) <= 256


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimitFilter(burst=0)


def test_the_kafka_logger_gets_one_filter_however_often_it_is_asked_for() -> None:
    kafka_logger()
    logger = kafka_logger()
    assert logger.name == KAFKA_LOGGER_NAME
    assert sum(isinstance(f, RateLimitFilter) for f in logger.filters) == 1
