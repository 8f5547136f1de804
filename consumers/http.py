"""A tiny threaded HTTP server beside the worker: ``/metrics`` (Prometheus) and ``/healthz``.

``/healthz`` answers 200 ``ok`` when every readiness check passes, else 503 with a JSON body naming
the failed checks. Port 0 binds an ephemeral port (tests); :attr:`ObservabilityServer.port` says which.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import cast

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from simstream.consumers.health import HealthChecker
from simstream.consumers.metrics import WorkerMetrics
from simstream.core.errors import SimstreamError
from simstream.schemas.settings import Settings

log = logging.getLogger("simstream.http")


class ObservabilityServerError(SimstreamError):
    """The metrics/health server cannot bind its address."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow scraper never holds up shutdown

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry, health: HealthChecker) -> None:
        self.registry = registry
        self.health = health
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server = cast(_Server, self.server)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(200, CONTENT_TYPE_LATEST, generate_latest(server.registry))
        elif path == "/healthz":
            report = server.health.report()
            if report.ok:
                self._reply(200, "text/plain; charset=utf-8", b"ok\n")
            else:
                self._reply(503, "application/json", report.to_json())
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n")

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # the base class names it `format`
        log.debug("%s %s", self.address_string(), format % args)


class ObservabilityServer:
    def __init__(self, registry: CollectorRegistry, health: HealthChecker, *, host: str, port: int) -> None:
        try:
            self._server = _Server((host, port), registry, health)
        except OSError as exc:
            raise ObservabilityServerError(f"cannot serve /metrics on {host}:{port}: {exc}") from exc
        self._thread = threading.Thread(target=self._server.serve_forever, name="simstream-http", daemon=True)

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> ObservabilityServer:
        self._thread.start()
        log.info("serving /metrics and /healthz on http://%s:%d", self.host, self.port)
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> ObservabilityServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def start_server(
    settings: Settings, metrics: WorkerMetrics, model_loaded: Callable[[], bool]
) -> ObservabilityServer | None:
    """The worker's server when ``metrics_port`` is set (0: any free port), else None."""
    if settings.metrics_port is None:
        return None
    health = HealthChecker.from_settings(settings, model_loaded)
    return ObservabilityServer(metrics.registry, health, host=settings.metrics_host, port=settings.metrics_port).start()
