"""Redis ACL on a private local Redis: the right password works, a wrong one fails clearly, never logged."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import SecretStr

from simstream.consumers import worker
from simstream.core import encoder as encoder_module
from simstream.core.errors import StoreAuthError
from simstream.core.redis_client import check_access, command, is_transient, make_redis_client, redis_errors
from simstream.devstack import stack
from simstream.devstack.layout import StackLayout
from simstream.devstack.ports import free_ports
from simstream.devstack.processes import process_cmdline
from simstream.schemas.settings import Settings

ACL_USER = "simstream-test"


def _to_stderr(line: str) -> None:
    print(f"[devstack acl] {line}", file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def acl_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A Redis of its own (the session one has no ACL user), with the default user off."""
    (port,) = free_ports(1)
    settings = Settings(
        dev_state_dir=tmp_path_factory.mktemp("devstack-acl"),
        dev_redis_port=port,
        dev_redis_aof=False,
        dev_stop_timeout_s=15.0,
        dev_redis_acl_user=ACL_USER,
        dev_redis_acl_password=SecretStr(f"right-{secrets.token_hex(8)}"),
    )
    stack.up(settings, progress=_to_stderr, services=["redis"])
    try:
        yield settings
    finally:
        stack.down(settings, progress=_to_stderr, services=["redis"])


def _client_settings(stack_settings: Settings, *, username: str | None, password: str | None) -> Settings:
    (status,) = stack.status(stack_settings, services=["redis"])
    return Settings(
        redis_url=status.endpoint,
        redis_username=username,
        redis_password=SecretStr(password) if password is not None else None,
    )


def _right_password(stack_settings: Settings) -> str:
    assert stack_settings.dev_redis_acl_password is not None
    return str(stack_settings.dev_redis_acl_password.get_secret_value())


def test_the_acl_user_with_the_right_password_can_search(acl_stack: Settings) -> None:
    client = make_redis_client(_client_settings(acl_stack, username=ACL_USER, password=_right_password(acl_stack)))
    try:
        check_access(client)
        assert isinstance(command(client, "FT._LIST"), list | set)
        assert command(client, "ACL", "WHOAMI") in (ACL_USER, ACL_USER.encode())
    finally:
        client.close()


def test_a_wrong_password_fails_with_a_clear_fatal_error(acl_stack: Settings) -> None:
    wrong = f"wrong-{secrets.token_hex(8)}"
    client = make_redis_client(_client_settings(acl_stack, username=ACL_USER, password=wrong))
    try:
        with pytest.raises(StoreAuthError) as at_start:
            check_access(client)
        with pytest.raises(StoreAuthError) as in_use, redis_errors("list indexes"):
            command(client, "FT._LIST")
    finally:
        client.close()
    assert f"Redis rejected the credentials for user {ACL_USER!r}" in str(at_start.value)
    assert "Redis rejected the credentials while trying to list indexes" in str(in_use.value)
    for error in (at_start.value, in_use.value):
        assert wrong not in str(error)
        assert error.__cause__ is not None and not is_transient(error.__cause__)


def test_the_passwordless_default_user_is_off(acl_stack: Settings) -> None:
    client = make_redis_client(_client_settings(acl_stack, username=None, password=None))
    try:
        with pytest.raises(StoreAuthError, match="for user 'default'"):
            check_access(client)
    finally:
        client.close()


def test_status_authenticates_and_the_password_is_in_no_argv_or_file(acl_stack: Settings) -> None:
    (status,) = stack.status(acl_stack, services=["redis"])
    assert status.running and status.pid is not None
    assert status.version is not None, status.detail  # INFO and MODULE LIST needed the ACL user
    password = _right_password(acl_stack)
    assert password not in " ".join(process_cmdline(status.pid) or [])
    state_files = [path for path in StackLayout.from_settings(acl_stack).state_dir.rglob("*") if path.is_file()]
    assert state_files  # the walk did look at something (pid file, log, ACL file)
    for path in state_files:
        assert password.encode() not in path.read_bytes(), path


class _StandInEncoder:
    """Just enough of an Encoder for build_worker to reach Redis without loading the real model."""

    model_id = "stand-in@0"
    dim = 8

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return [1 for _ in texts]

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.zeros((len(texts), self.dim), dtype=np.float32)


def test_worker_start_with_a_wrong_password_logs_the_reason_but_no_secret(
    acl_stack: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    wrong = f"wrong-{secrets.token_hex(8)}"
    sasl_secret = f"sasl-{secrets.token_hex(8)}"
    (closed_kafka_port,) = free_ports(1)
    settings = _client_settings(acl_stack, username=ACL_USER, password=wrong).model_copy(
        update={
            "kafka_bootstrap": f"127.0.0.1:{closed_kafka_port}",
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": "SCRAM-SHA-256",
            "kafka_sasl_username": "svc",
            "kafka_sasl_password": SecretStr(sasl_secret),
            "index_name": f"idx-{secrets.token_hex(4)}",
            "index_alias": f"alias-{secrets.token_hex(4)}",
        }
    )
    monkeypatch.setattr(encoder_module.TransformerEncoder, "from_settings", lambda _settings: _StandInEncoder())
    with caplog.at_level(logging.DEBUG):
        assert worker.run_worker(settings) == 2  # fails before Kafka is ever contacted
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("settings: ") for message in messages)
    assert any("cannot start" in message and "Redis rejected the credentials" in message for message in messages)
    for secret in (wrong, sasl_secret, _right_password(acl_stack)):
        assert not [message for message in messages if secret in message]


def test_redis_shell_connects_as_the_settings_acl_user(acl_stack: Settings) -> None:
    (status,) = stack.status(acl_stack, services=["redis"])
    env = {name: value for name, value in os.environ.items() if not name.startswith("SIMSTREAM_")}
    env.update(SIMSTREAM_REDIS_URL=status.endpoint, SIMSTREAM_REDIS_USERNAME=ACL_USER)

    def shell(password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "simstream"), "redis-shell", "ACL", "WHOAMI"],
            env={**env, "SIMSTREAM_REDIS_PASSWORD": password}, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    assert shell(_right_password(acl_stack)).stdout == f'"{ACL_USER}"\n'
    refused = shell("wrong-password")
    assert refused.returncode == 1 and "Redis rejected the credentials" in refused.stdout
    assert "wrong-password" not in refused.stdout + refused.stderr
