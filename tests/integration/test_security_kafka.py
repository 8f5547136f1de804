"""Kafka SASL/PLAIN against a private local broker: the right password is let in, a wrong one is refused."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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


# --- the worker's start: one clear line and exit 2, never a traceback -----------------------------

START_TIMEOUT_S = 8.0


def _run_worker(env_overrides: dict[str, str], tmp_path: Path, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SIMSTREAM_")}
    env.update(
        {
            "SIMSTREAM_KAFKA_START_TIMEOUT_S": str(START_TIMEOUT_S),
            "SIMSTREAM_REDIS_URL": redis_url,  # a Redis that answers: only Kafka refuses
            "SIMSTREAM_INPUT_TOPIC": f"t-{secrets.token_hex(4)}",
            **env_overrides,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "simstream", "run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _assert_one_cannot_start_line(result: subprocess.CompletedProcess[str], *reasons: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if "cannot start:" in line]
    assert len(lines) == 1, output
    assert all(reason in lines[0] for reason in reasons), lines[0]
    return output


def test_a_wrong_password_stops_the_worker_at_start_with_one_line(
    sasl_stack: Settings, tmp_path: Path, redis_url: str
) -> None:
    wrong = f"wrong-{secrets.token_hex(8)}"
    result = _run_worker(
        {
            "SIMSTREAM_KAFKA_BOOTSTRAP": f"{LOOPBACK}:{sasl_stack.dev_kafka_sasl_port}",
            "SIMSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "SIMSTREAM_KAFKA_SASL_MECHANISM": "PLAIN",
            "SIMSTREAM_KAFKA_SASL_USERNAME": SASL_USER,
            "SIMSTREAM_KAFKA_SASL_PASSWORD": wrong,
        },
        tmp_path,
        redis_url,
    )
    output = _assert_one_cannot_start_line(result, "refused the credentials")
    assert wrong not in output


def test_an_unreachable_broker_stops_the_worker_after_the_start_timeout(tmp_path: Path, redis_url: str) -> None:
    (port,) = free_ports(1)
    result = _run_worker({"SIMSTREAM_KAFKA_BOOTSTRAP": f"{LOOPBACK}:{port}"}, tmp_path, redis_url)
    output = _assert_one_cannot_start_line(result, "did not answer within 8 s")
    # librdkafka retries the dead port many times a second: the log keeps a few of those lines.
    assert sum("Connection refused" in line for line in output.splitlines()) <= 4, output
