"""Readiness checks and the /metrics + /healthz server, over loopback HTTP only."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import orjson
import pytest
from support.scrape import get, scrape, value

from simstream.consumers.health import CachedCheck, HealthChecker, HealthCheckFailed, model_check, redis_ping
from simstream.consumers.http import ObservabilityServer, ObservabilityServerError, start_server
from simstream.consumers.metrics import WorkerMetrics
from simstream.schemas.settings import Settings


def closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def passes() -> None:
    return None


def broken() -> None:
    raise HealthCheckFailed("Redis PING failed: connection refused")


def test_the_report_is_ok_only_when_every_check_passes_and_names_each_failure() -> None:
    assert HealthChecker({"a": passes, "b": passes}).report().ok
    report = HealthChecker({"redis": broken, "kafka": passes, "model": model_check(lambda: False)}).report()
    assert not report.ok
    assert set(report.failures) == {"redis", "model"}
    assert "connection refused" in report.failures["redis"]
    body = orjson.loads(report.to_json())
    assert body["status"] == "unavailable"
    assert set(body["failed"]) == {"redis", "model"}


def test_any_exception_of_a_check_is_a_failure_not_a_crash() -> None:
    def buggy() -> None:
        raise ZeroDivisionError("division by zero")

    assert HealthChecker({"buggy": buggy}).report().failures == {"buggy": "ZeroDivisionError: division by zero"}


@dataclass
class CountingCheck:
    fail: bool = False
    calls: int = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.fail:
            raise HealthCheckFailed(f"failure #{self.calls}")


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_cached_check_repeats_its_last_outcome_until_the_ttl_ends() -> None:
    inner, clock = CountingCheck(), FakeClock()
    cached = CachedCheck(inner, ttl_s=5.0, clock=clock)
    cached()
    inner.fail = True
    clock.now = 4.9
    cached()  # still the cached pass
    assert inner.calls == 1
    clock.now = 5.0
    with pytest.raises(HealthCheckFailed, match="failure #2"):
        cached()
    clock.now = 9.0
    with pytest.raises(HealthCheckFailed, match="failure #2"):  # the failure is cached too
        cached()
    assert inner.calls == 2


def test_redis_ping_fails_with_the_reason_when_nothing_listens() -> None:
    check = redis_ping(Settings(redis_url=f"redis://127.0.0.1:{closed_port()}/0"))
    with pytest.raises(HealthCheckFailed, match="Redis PING failed"):
        check()


@pytest.fixture
def metrics() -> WorkerMetrics:
    return WorkerMetrics()


def serve(metrics: WorkerMetrics, health: HealthChecker) -> ObservabilityServer:
    return ObservabilityServer(metrics.registry, health, host="127.0.0.1", port=0)


def test_metrics_are_served_in_the_prometheus_text_format(metrics: WorkerMetrics) -> None:
    metrics.count_record_in()
    metrics.count_record_in()
    with serve(metrics, HealthChecker({})) as server:
        base = f"http://127.0.0.1:{server.port}"
        status, content_type, _ = get(f"{base}/metrics")
        assert status == 200
        assert content_type.startswith("text/plain")
        assert value(scrape(base), "simstream_records_in_total") == 2


def test_healthz_is_200_ok_when_ready_and_503_with_the_failed_checks_otherwise(metrics: WorkerMetrics) -> None:
    loaded = False
    health = HealthChecker({"kafka": passes, "model": model_check(lambda: loaded)})
    with serve(metrics, health) as server:
        url = f"http://127.0.0.1:{server.port}/healthz"
        status, content_type, body = get(url)
        assert (status, content_type) == (503, "application/json")
        assert orjson.loads(body) == {
            "status": "unavailable",
            "failed": {"model": "HealthCheckFailed: model not loaded yet"},
        }
        loaded = True
        assert get(url)[0::2] == (200, b"ok\n")


def test_unknown_paths_are_404(metrics: WorkerMetrics) -> None:
    with serve(metrics, HealthChecker({})) as server:
        assert get(f"http://127.0.0.1:{server.port}/nope")[0] == 404


def test_a_port_in_use_is_a_simstream_error(metrics: WorkerMetrics) -> None:
    with serve(metrics, HealthChecker({})) as first, pytest.raises(ObservabilityServerError, match=str(first.port)):
        ObservabilityServer(metrics.registry, HealthChecker({}), host="127.0.0.1", port=first.port)


def test_no_server_without_a_metrics_port(metrics: WorkerMetrics) -> None:
    assert start_server(Settings(metrics_port=None), metrics, lambda: True) is None


def test_the_worker_server_binds_an_ephemeral_port_and_stops(metrics: WorkerMetrics) -> None:
    settings = Settings(metrics_port=0, metrics_host="127.0.0.1", redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    server = start_server(settings, metrics, lambda: True)
    assert server is not None
    try:
        assert server.port > 0
        assert get(f"http://127.0.0.1:{server.port}/metrics")[0] == 200
    finally:
        server.close()
    with socket.socket() as probe:  # the port is free again: the listening socket was closed
        # SO_REUSEADDR tolerates our client's TIME_WAIT connection, never a socket still listening.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", server.port))
