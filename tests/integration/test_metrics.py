"""/metrics and /healthz of the real worker on the real stack, scraped while it runs."""

from __future__ import annotations

import contextlib
import itertools
import socket
from collections.abc import Iterator

import orjson
import pytest
from support.scrape import Sample, get, scrape, value
from support.streaming import (
    RunningWorker,
    create_stream_topics,
    event,
    publish,
    publish_raw,
    settled,
    stream_settings,
    wait_for,
)

from simstream.consumers.health import HealthChecker
from simstream.consumers.http import ObservabilityServer
from simstream.consumers.metrics import WorkerMetrics
from simstream.core.encoder import TransformerEncoder
from simstream.core.errors import StoreError
from simstream.core.redis_client import make_redis_client
from simstream.core.vector_store import RedisVectorStore
from simstream.demo import sample_catalog
from simstream.producers.catalog import read_catalog
from simstream.schemas.settings import Settings

pytestmark = pytest.mark.integration

PRODUCTS = 12


@pytest.fixture
def settings(kafka_bootstrap: str, redis_url: str, unique_name: str) -> Iterator[Settings]:
    configured = stream_settings(
        kafka_bootstrap,
        redis_url,
        unique_name,
        metrics_port=0,
        metrics_host="127.0.0.1",
        metrics_lag_interval_s=0.5,
    )
    create_stream_topics(configured)
    yield configured
    client = make_redis_client(configured)
    with contextlib.suppress(StoreError):  # a test whose worker never started has no index
        RedisVectorStore.from_settings(configured, client).drop_index(delete_documents=True)
    for key in client.scan_iter(match=f"{configured.redis_prefix}*", count=1000):
        client.delete(key)


def lag_by_partition(samples: dict[Sample, float]) -> dict[str, float]:
    return {dict(labels)["partition"]: v for (name, labels), v in samples.items() if name == "simstream_consumer_lag"}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_running_worker_exports_its_metrics_and_is_healthy(
    settings: Settings, default_encoder: TransformerEncoder
) -> None:
    abt, _ = sample_catalog()
    rows = list(itertools.islice(read_catalog(abt, id_prefix="abt-"), PRODUCTS))
    with RunningWorker(settings, default_encoder) as running:
        assert running.server is not None
        base = f"http://127.0.0.1:{running.server.port}"
        wait_for(lambda: get(f"{base}/healthz")[0] == 200, 30, "/healthz to answer 200")
        publish(settings, [event(row.product_id, 1, row.product) for row in rows])
        publish_raw(settings, [(b"bad-1", b"{not json")])

        def drained() -> bool:
            samples = scrape(base)
            lags = lag_by_partition(samples)
            return (
                # Every record went through a committed batch (records_in alone counts at decoding).
                value(samples, "simstream_batch_size_sum") == PRODUCTS + 1
                and bool(lags)
                and sum(lags.values()) == 0
                # The first load's lists, built in bulk after the last batch: one at least per product.
                and settled(settings)
                and value(samples, "simstream_lists_emitted_total") >= PRODUCTS
            )

        wait_for(drained, 120, "the worker to consume everything and export it")
        samples = scrape(base)
        status, _, body = get(f"{base}/healthz")
        assert (status, body) == (200, b"ok\n")

    assert value(samples, "simstream_records_in_total") == PRODUCTS + 1 == running.stats.records_in
    assert value(samples, "simstream_dead_letters_total", reason="invalid_json") == 1
    assert value(samples, "simstream_dead_letters_total", reason="validation_error") == 0
    assert value(samples, "simstream_encoded_total") == PRODUCTS
    assert value(samples, "simstream_lists_emitted_total") == running.stats.lists_emitted
    assert value(samples, "simstream_tombstones_total") == 0
    # Every product's own list was delivered once, so each left one freshness sample.
    assert value(samples, "simstream_freshness_seconds_count") == PRODUCTS
    assert value(samples, "simstream_freshness_seconds_bucket", le="+Inf") == PRODUCTS
    batches = value(samples, "simstream_batch_size_count") or 0
    assert batches >= 1
    assert (value(samples, "simstream_batch_tokens_sum") or 0) > 0
    assert 1 <= (value(samples, "simstream_encode_seconds_count") or 0) <= batches
    assert (value(samples, "simstream_encode_seconds_sum") or 0) > 0
    assert (value(samples, "simstream_redis_seconds_count") or 0) >= 1
    assert set(lag_by_partition(samples)) <= {"0", "1", "2"}


def test_healthz_answers_503_naming_redis_when_redis_cannot_be_reached(settings: Settings) -> None:
    unreachable = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port()}/0"})
    health = HealthChecker.from_settings(unreachable, model_loaded=lambda: True)
    with ObservabilityServer(WorkerMetrics().registry, health, host="127.0.0.1", port=0) as server:
        status, content_type, body = get(f"http://127.0.0.1:{server.port}/healthz")
    assert (status, content_type) == (503, "application/json")
    report = orjson.loads(body)
    assert report["status"] == "unavailable"
    assert set(report["failed"]) == {"redis"}  # Kafka (real) answered and the model is loaded
    assert "Redis PING failed" in report["failed"]["redis"]
