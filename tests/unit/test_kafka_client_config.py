"""What our Kafka clients tell the broker: identity, compression, partitioner, and what overrides what."""

from __future__ import annotations

import logging
import os
import socket

import pytest
from pydantic import ValidationError

from simstream.consumers.worker import consumer_config
from simstream.core.log_limit import RateLimitFilter
from simstream.producers.config import JAVA_COMPATIBLE_PARTITIONER
from simstream.producers.publish import make_producer
from simstream.producers.sink import producer_config
from simstream.schemas.settings import Settings, kafka_client_id


def test_the_client_id_is_the_worker_id_when_set() -> None:
    settings = Settings(worker_id="simstream-worker-7")
    assert consumer_config(settings)["client.id"] == "simstream-worker-7"
    assert producer_config(settings, None)["client.id"] == "simstream-worker-7"


def test_without_a_worker_id_the_client_id_names_group_host_and_process() -> None:
    assert kafka_client_id(Settings(group_id="recs")) == f"simstream-recs-{socket.gethostname()}-{os.getpid()}"


def test_producers_compress_with_gzip_and_partition_like_the_java_client_by_default() -> None:
    config = producer_config(Settings(), None)
    assert config["compression.type"] == "gzip"
    assert config["partitioner"] == JAVA_COMPATIBLE_PARTITIONER == "murmur2_random"


def test_compression_is_a_setting_and_kafka_extra_overrides_it() -> None:
    assert producer_config(Settings(kafka_compression="zstd"), None)["compression.type"] == "zstd"
    extra = Settings(kafka_compression="zstd", kafka_extra={"compression.type": "none", "partitioner": "consistent"})
    config = producer_config(extra, None)
    assert (config["compression.type"], config["partitioner"]) == ("none", "consistent")
    with pytest.raises(ValidationError):
        Settings(kafka_compression="brotli")  # type: ignore[arg-type]


def test_consumers_get_no_producer_options() -> None:
    config = consumer_config(Settings())
    assert "compression.type" not in config and "partitioner" not in config


def test_every_client_logs_through_the_rate_limited_kafka_logger() -> None:
    for config in (consumer_config(Settings()), producer_config(Settings(), "txn-1")):
        logger = config["logger"]
        assert isinstance(logger, logging.Logger)
        assert any(isinstance(f, RateLimitFilter) for f in logger.filters)


def test_the_publish_producer_is_built_from_the_shared_options() -> None:
    make_producer(Settings(kafka_bootstrap="127.0.0.1:1")).flush(0)  # librdkafka accepts every option
