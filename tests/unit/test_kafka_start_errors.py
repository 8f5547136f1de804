"""The one line that says why Kafka refused the worker's start (the broker paths: test_security_kafka)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from simstream.producers.topics import ClientErrors, explain
from simstream.schemas.settings import Settings

SETTINGS = Settings(kafka_bootstrap="broker-1:9092", kafka_start_timeout_s=12)
NO_ANSWER = "Kafka at broker-1:9092 did not answer within 12 s (kafka_start_timeout_s): "
TRANSPORT = KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata: Local: Broker transport failure"))


def reported(*errors: KafkaError) -> ClientErrors:
    client_errors = ClientErrors()
    for error in errors:
        client_errors(error)
    return client_errors


@pytest.mark.parametrize(
    ("failure", "client_errors", "expected"),
    [
        (
            TRANSPORT,
            reported(
                KafkaError(KafkaError._TRANSPORT, "Disconnected"),
                KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: invalid credentials"),
            ),
            "Kafka at broker-1:9092 refused the credentials: SASL authentication error: invalid credentials",
        ),
        (
            TRANSPORT,
            reported(KafkaError(KafkaError._SSL, "certificate verify failed")),
            "Kafka at broker-1:9092: the TLS handshake failed: certificate verify failed",
        ),
        (
            KafkaException(KafkaError(KafkaError.CLUSTER_AUTHORIZATION_FAILED, "create topics denied")),
            reported(),
            "Kafka at broker-1:9092: not authorised: create topics denied",
        ),
        (
            TRANSPORT,
            reported(
                KafkaError(KafkaError._TRANSPORT, "Connection refused"),
                KafkaError(KafkaError._RESOLVE, "Failed to resolve 'broker-1:9092'"),
            ),
            f"{NO_ANSWER}Failed to resolve 'broker-1:9092'",
        ),
        (
            KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out")),
            reported(),
            f"{NO_ANSWER}timed out",
        ),
    ],
)
def test_the_start_failure_names_its_cause(failure: KafkaException, client_errors: ClientErrors, expected: str) -> None:
    assert str(explain(SETTINGS, failure, client_errors)) == expected
