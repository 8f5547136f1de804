"""Kafka SASL/PLAIN against a private local broker: the right password is let in, a wrong one is refused."""

from __future__ import annotations

import secrets
import stat
import sys
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from simstream.devstack import stack
from simstream.devstack.layout import LOOPBACK, StackLayout
from simstream.devstack.ports import free_ports
from simstream.devstack.processes import process_cmdline
from simstream.schemas.settings import Settings, kafka_client_config

SASL_USER = "simstream-test"
REFUSAL_TIMEOUT_S = 30.0


def _to_stderr(line: str) -> None:
    print(f"[devstack sasl] {line}", file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def sasl_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A broker of its own (the session one has no SASL listener)."""
    kafka_port, controller_port, sasl_port = free_ports(3)
    settings = Settings(
        dev_state_dir=tmp_path_factory.mktemp("devstack-sasl"),
        dev_kafka_port=kafka_port,
        dev_kafka_controller_port=controller_port,
        dev_kafka_sasl_port=sasl_port,
        dev_kafka_sasl_username=SASL_USER,
        dev_kafka_sasl_password=SecretStr(f"right-{secrets.token_hex(8)}"),
        dev_stop_timeout_s=15.0,
    )
    stack.up(settings, progress=_to_stderr, services=["kafka"])
    try:
        yield settings
    finally:
        stack.down(settings, progress=_to_stderr, services=["kafka"])


def _client_settings(stack_settings: Settings, password: str) -> Settings:
    return Settings(
        kafka_bootstrap=f"{LOOPBACK}:{stack_settings.dev_kafka_sasl_port}",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username=SASL_USER,
        kafka_sasl_password=SecretStr(password),
    )


def _right_password(stack_settings: Settings) -> str:
    assert stack_settings.dev_kafka_sasl_password is not None
    return str(stack_settings.dev_kafka_sasl_password.get_secret_value())


def test_the_sasl_user_with_the_right_password_reads_metadata(sasl_stack: Settings) -> None:
    admin = AdminClient(kafka_client_config(_client_settings(sasl_stack, _right_password(sasl_stack))))
    metadata = admin.list_topics(timeout=REFUSAL_TIMEOUT_S)
    assert [broker.port for broker in metadata.brokers.values()] == [sasl_stack.dev_kafka_sasl_port]


def test_a_wrong_password_is_refused_as_an_authentication_error(sasl_stack: Settings) -> None:
    errors: list[KafkaError] = []
    config = {
        **kafka_client_config(_client_settings(sasl_stack, f"wrong-{secrets.token_hex(8)}")),
        "error_cb": errors.append,
    }
    admin = AdminClient(config)
    deadline = time.monotonic() + REFUSAL_TIMEOUT_S
    while not any(error.code() == KafkaError._AUTHENTICATION for error in errors):
        assert time.monotonic() < deadline, f"no authentication error within {REFUSAL_TIMEOUT_S} s: {errors}"
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=2.0)
        admin.poll(0)  # serve error_cb


def test_the_password_is_in_no_argv_and_the_broker_config_is_private(sasl_stack: Settings) -> None:
    (status,) = stack.status(sasl_stack, services=["kafka"])
    assert status.running and status.pid is not None
    assert _right_password(sasl_stack) not in " ".join(process_cmdline(status.pid) or [])
    config = StackLayout.from_settings(sasl_stack).kafka_config
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
