"""Create the topics the worker uses when they are missing (the output topic compacted).

This is also the worker's first conversation with Kafka, so it turns refused credentials, missing
rights and unreachable brokers into one :class:`KafkaAccessError` that says which it was.
"""

from __future__ import annotations

import threading

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from simstream.core.errors import SimstreamError
from simstream.core.log_limit import kafka_logger
from simstream.schemas.settings import Settings, kafka_client_config

# Dead letters keep the original bytes, and the oversized ones are exactly what lands there.
DLQ_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
DLQ_TOPIC_CONFIG = {"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)}

AUTHORIZATION_ERRORS = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)


class KafkaAccessError(SimstreamError):
    """Kafka refused the credentials or the rights, or no broker answered in time: fatal at start."""


class ClientErrors:
    """The client-level errors librdkafka reports (``error_cb``): the last one of each code."""

    def __init__(self) -> None:
        self._by_code: dict[int, KafkaError] = {}
        self._lock = threading.Lock()

    def __call__(self, error: KafkaError) -> None:
        with self._lock:
            self._by_code[error.code()] = error

    def first(self, *codes: int) -> KafkaError | None:
        """The error of the first of ``codes`` that was reported, if any."""
        with self._lock:
            return next((self._by_code[code] for code in codes if code in self._by_code), None)


def explain(settings: Settings, exc: KafkaException, errors: ClientErrors) -> KafkaAccessError:
    """Why a start-up request failed, in one line: credentials, rights, or no broker answering."""
    where = f"Kafka at {settings.kafka_bootstrap}"
    refused = errors.first(KafkaError._AUTHENTICATION)
    if refused is not None:
        return KafkaAccessError(f"{where} refused the credentials: {refused.str()}")
    handshake = errors.first(KafkaError._SSL)
    if handshake is not None:
        return KafkaAccessError(f"{where}: the TLS handshake failed: {handshake.str()}")
    error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if error is not None and error.code() in AUTHORIZATION_ERRORS:
        return KafkaAccessError(f"{where}: not authorised: {error.str()}")
    if error is not None and error.code() in (
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
    ):
        # The name that does not resolve, or the connection refused, says more than "transport failure".
        cause = errors.first(KafkaError._RESOLVE, KafkaError._TRANSPORT) or error
        return KafkaAccessError(
            f"{where} did not answer within {settings.kafka_start_timeout_s:.0f} s "
            f"(kafka_start_timeout_s): {cause.str()}"
        )
    return KafkaAccessError(f"{where}: {exc}")


def ensure_topics(settings: Settings, *, partitions: int = 6) -> None:
    timeout_s = settings.kafka_start_timeout_s
    errors = ClientErrors()
    admin = AdminClient(kafka_client_config(settings), logger=kafka_logger(), error_cb=errors)
    wanted = [
        NewTopic(settings.input_topic, num_partitions=partitions, replication_factor=-1),
        NewTopic(
            settings.output_topic,
            num_partitions=partitions,
            replication_factor=-1,
            config={"cleanup.policy": "compact"},
        ),
        NewTopic(settings.dlq_topic, num_partitions=1, replication_factor=-1, config=DLQ_TOPIC_CONFIG),
    ]
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
        missing = [topic for topic in wanted if topic.topic not in existing]
        if missing:
            for future in admin.create_topics(missing, operation_timeout=timeout_s).values():
                try:
                    future.result(timeout_s)
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise
    except KafkaException as exc:
        admin.poll(0)  # serve the queued error callbacks (and log lines): they say why
        raise explain(settings, exc, errors) from exc
    admin.poll(0)  # log lines wait in the client's queue until served


def partitions_led(settings: Settings, topics: list[str], *, timeout_s: float = 30.0) -> dict[int, int]:
    """How many partitions of these topics each broker leads now (by node id)."""
    metadata = AdminClient(kafka_client_config(settings), logger=kafka_logger()).list_topics(timeout=timeout_s)
    led: dict[int, int] = {}
    for name in topics:
        for partition in metadata.topics[name].partitions.values():
            led[partition.leader] = led.get(partition.leader, 0) + 1
    return led
