"""Security settings: librdkafka/redis-py options built from them, validation, and secrets never shown."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import orjson
import pytest
import redis
from pydantic import SecretStr, ValidationError

from simstream import cli
from simstream.consumers import worker
from simstream.core.errors import StoreAuthError, StoreError, StoreUnavailableError
from simstream.core.redis_client import is_transient, make_redis_client, store_error
from simstream.devstack import kafka, redis_server
from simstream.devstack.layout import StackLayout
from simstream.schemas.settings import Settings, kafka_client_config, mask_url_password

SASL_SECRET = "sasl-Secret-3f9a"
KEY_SECRET = "keypass-Secret-77b1"
REDIS_SECRET = "redis-Secret-c0de"
URL_SECRET = "url-Secret-9e21"
EXTRA_SECRET = "extra-Secret-51aa"
ACL_SECRET = "acl-Secret-d4d4"
ALL_SECRETS = (SASL_SECRET, KEY_SECRET, REDIS_SECRET, URL_SECRET, EXTRA_SECRET, ACL_SECRET)


def _secure_settings() -> Settings:
    return Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc-simstream",
        kafka_sasl_password=SecretStr(SASL_SECRET),
        kafka_ssl_ca_location="/etc/kafka/ca.pem",
        kafka_ssl_certificate_location="/etc/kafka/client.pem",
        kafka_ssl_key_location="/etc/kafka/client.key",
        kafka_ssl_key_password=SecretStr(KEY_SECRET),
        kafka_ssl_endpoint_identification="https",
        kafka_extra={"sasl.oauthbearer.client.secret": EXTRA_SECRET, "linger.ms": "5"},
        redis_url=f"rediss://svc:{URL_SECRET}@redis.internal:6380/0",
        redis_username="svc",
        redis_password=SecretStr(REDIS_SECRET),
        redis_tls_ca="/etc/redis/ca.pem",
        dev_redis_acl_user="svc",
        dev_redis_acl_password=SecretStr(ACL_SECRET),
    )


# --- librdkafka options ---------------------------------------------------------------------------


def test_kafka_config_carries_sasl_and_mutual_tls_options() -> None:
    config = kafka_client_config(_secure_settings())
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.username"] == "svc-simstream"
    assert config["sasl.password"] == SASL_SECRET
    assert config["ssl.ca.location"] == "/etc/kafka/ca.pem"
    assert config["ssl.certificate.location"] == "/etc/kafka/client.pem"
    assert config["ssl.key.location"] == "/etc/kafka/client.key"
    assert config["ssl.key.password"] == KEY_SECRET
    assert config["ssl.endpoint.identification.algorithm"] == "https"
    assert config["linger.ms"] == "5"


def test_plaintext_kafka_config_has_no_security_options() -> None:
    config = kafka_client_config(Settings())
    assert config["security.protocol"] == "PLAINTEXT"
    assert not [key for key in config if key.startswith(("sasl.", "ssl."))]


def test_plain_sasl_over_plaintext_is_accepted() -> None:
    config = kafka_client_config(
        Settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="PLAIN",
            kafka_sasl_username="u",
            kafka_sasl_password=SecretStr("p"),
        )
    )
    assert (config["sasl.mechanism"], config["sasl.username"], config["sasl.password"]) == ("PLAIN", "u", "p")


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN"},
            "kafka_sasl_mechanism=PLAIN needs kafka_sasl_username and kafka_sasl_password",
        ),
        (
            {
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": "SCRAM-SHA-256",
                "kafka_sasl_username": "u",
            },
            "kafka_sasl_mechanism=SCRAM-SHA-256 needs kafka_sasl_password",
        ),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT"},
            "kafka_security_protocol=SASL_PLAINTEXT needs kafka_sasl_mechanism",
        ),
        (
            {"kafka_sasl_mechanism": "PLAIN", "kafka_sasl_username": "u", "kafka_sasl_password": "p"},
            "has no effect with kafka_security_protocol=PLAINTEXT",
        ),
        ({"kafka_sasl_username": "u"}, "kafka_sasl_mechanism is not"),
        ({"kafka_ssl_ca_location": "/ca.pem"}, "need kafka_security_protocol SSL or SASL_SSL"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_certificate_location": "/c.pem"},
            "kafka_ssl_certificate_location and kafka_ssl_key_location go together",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_key_password": "x"},
            "kafka_ssl_key_password is set but kafka_ssl_key_location is not",
        ),
        ({"redis_tls_ca": "/ca.pem"}, "need redis_tls=true or a rediss:// redis_url"),
        ({"redis_tls": True, "redis_tls_key": "/k.pem"}, "redis_tls_cert and redis_tls_key go together"),
        ({"redis_tls": True, "redis_url": "unix:///tmp/redis.sock"}, "cannot apply to a unix:// redis_url"),
        ({"dev_redis_acl_user": "svc"}, "dev_redis_acl_user and dev_redis_acl_password go together"),
        ({"dev_redis_acl_user": "svc on +@all", "dev_redis_acl_password": "p"}, "may hold only letters"),
        ({"dev_redis_acl_user": "svc", "dev_redis_acl_password": ""}, "dev_redis_acl_password is set but empty"),
        ({"dev_kafka_sasl_port": 19094}, "dev_kafka_sasl_port, dev_kafka_sasl_username and dev_kafka_sasl_password go"),
        (
            {"dev_kafka_sasl_port": 1, "dev_kafka_sasl_username": "svc", "dev_kafka_sasl_password": 'a"b'},
            "dev_kafka_sasl_password must be non-empty, without quotes",
        ),
    ],
)
def test_inconsistent_security_settings_fail_with_a_clear_message(fields: dict[str, object], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**fields)
    assert expected in str(caught.value)


def test_sasl_mechanism_may_come_from_the_pass_through_options() -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_extra={"sasl.mechanism": "OAUTHBEARER"})
    assert kafka_client_config(settings)["sasl.mechanism"] == "OAUTHBEARER"


def test_validation_errors_never_echo_the_secrets() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(kafka_sasl_password=SecretStr(SASL_SECRET), redis_tls_ca="/ca.pem", redis_password=REDIS_SECRET)
    assert "kafka_sasl_mechanism is not" in str(caught.value)
    for secret in (SASL_SECRET, REDIS_SECRET):
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value)


def test_settings_from_the_environment_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SIMSTREAM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("SIMSTREAM_KAFKA_SASL_USERNAME", "u")
    with pytest.raises(ValidationError, match="needs kafka_sasl_password"):
        Settings()


# --- masking --------------------------------------------------------------------------------------


def test_masked_settings_hold_no_secret_anywhere() -> None:
    settings = _secure_settings()
    shown = settings.masked()
    dumped = orjson.dumps(shown).decode()
    for secret in ALL_SECRETS:
        assert secret not in dumped
        assert secret not in repr(settings)
    assert shown["kafka_sasl_password"] == "**********"
    assert shown["kafka_ssl_key_password"] == "**********"
    assert shown["redis_password"] == "**********"
    assert shown["dev_redis_acl_password"] == "**********"
    assert shown["kafka_extra"] == {"sasl.oauthbearer.client.secret": "**********", "linger.ms": "5"}
    assert shown["redis_url"] == "rediss://svc:**********@redis.internal:6380/0"
    assert shown["kafka_sasl_username"] == "svc-simstream"  # user names are not secrets: they help debugging


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://user@h:1/0", "redis://user@h:1/0"),
        ("redis://:pw@h:1/0", "redis://:**********@h:1/0"),
        ("redis://u:p@ss@h:1/0", "redis://u:**********@h:1/0"),
        ("redis://h:1/0?password=pw&db=2", "redis://h:1/0?password=**********&db=2"),
        ("unix:///tmp/r.sock?password=pw", "unix:///tmp/r.sock?password=**********"),
    ],
)
def test_url_passwords_are_masked(url: str, expected: str) -> None:
    assert mask_url_password(url) == expected


def test_simstream_config_prints_no_secret(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SIMSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("SIMSTREAM_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("SIMSTREAM_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("SIMSTREAM_KAFKA_SASL_PASSWORD", SASL_SECRET)
    monkeypatch.setenv("SIMSTREAM_REDIS_PASSWORD", REDIS_SECRET)
    monkeypatch.setenv("SIMSTREAM_REDIS_URL", f"redis://svc:{URL_SECRET}@127.0.0.1:6379/0")
    monkeypatch.setenv("SIMSTREAM_KAFKA_EXTRA", orjson.dumps({"ssl.key.pem": EXTRA_SECRET}).decode())
    assert cli.main(["config"]) == 0
    out, err = capsys.readouterr()
    shown = orjson.loads(out)
    assert shown["kafka_sasl_mechanism"] == "PLAIN"  # the env vars did reach the settings
    for secret in (SASL_SECRET, REDIS_SECRET, URL_SECRET, EXTRA_SECRET):
        assert secret not in out + err


def test_worker_startup_log_holds_no_secret(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def fail_to_build(settings: Settings, **_: object) -> worker.Worker:
        raise StoreAuthError("stand-in for a start-up failure")

    monkeypatch.setattr(worker, "build_worker", fail_to_build)
    with caplog.at_level(logging.DEBUG):
        assert worker.run_worker(_secure_settings()) == 2
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("settings: ") and "kafka_sasl_password" in message for message in messages)
    for secret in ALL_SECRETS:
        assert not [message for message in messages if secret in message]


# --- Redis client ---------------------------------------------------------------------------------


def test_redis_tls_flag_turns_a_redis_url_into_tls_with_the_given_files() -> None:
    settings = Settings(
        redis_url="redis://cache.internal:6380/1",
        redis_tls=True,
        redis_tls_ca="/ca.pem",
        redis_tls_cert="/client.pem",
        redis_tls_key="/client.key",
        redis_tls_check_hostname=False,
    )
    pool = make_redis_client(settings).connection_pool
    assert issubclass(pool.connection_class, redis.SSLConnection)
    kwargs = pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.internal", 6380, 1)
    assert kwargs["ssl_ca_certs"] == "/ca.pem"
    assert kwargs["ssl_certfile"] == "/client.pem"
    assert kwargs["ssl_keyfile"] == "/client.key"
    assert kwargs["ssl_check_hostname"] is False
    assert kwargs["ssl_cert_reqs"] == "required"


def test_rediss_url_alone_enables_tls_and_plain_url_does_not() -> None:
    assert issubclass(
        make_redis_client(Settings(redis_url="rediss://h:1/0")).connection_pool.connection_class, redis.SSLConnection
    )
    plain = make_redis_client(Settings(redis_url="redis://h:1/0")).connection_pool.connection_class
    assert not issubclass(plain, redis.SSLConnection)


def test_redis_credentials_from_settings_win_over_the_url() -> None:
    settings = Settings(redis_url="redis://old:old-pw@h:1/0", redis_username="svc", redis_password=SecretStr("new-pw"))
    kwargs = make_redis_client(settings).connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("svc", "new-pw")


def test_refused_credentials_are_fatal_and_say_so() -> None:
    refused = redis.exceptions.AuthenticationError("WRONGPASS invalid username-password pair or user is disabled.")
    assert isinstance(refused, redis.exceptions.ConnectionError)  # why it needs its own rule
    assert not is_transient(refused)
    error = store_error(refused, "check index 'x'")
    assert isinstance(error, StoreAuthError)
    assert not isinstance(error, StoreUnavailableError)
    assert "Redis rejected the credentials while trying to check index 'x'" in str(error)
    assert "SIMSTREAM_REDIS_PASSWORD" in str(error)


def test_missing_acl_permission_is_an_auth_error_and_other_errors_keep_their_class() -> None:
    assert isinstance(store_error(redis.exceptions.NoPermissionError("NOPERM no"), "write"), StoreAuthError)
    # A command inside a script refused by ACL: fatal for the worker, never one record's fault.
    in_script = redis.exceptions.ResponseError("ACL failure in script: User w has no permissions to run the 'time'")
    assert isinstance(store_error(in_script, "write"), StoreAuthError)
    # Server states that pass (out of memory, a failed background save) are retried, not dead-lettered.
    assert isinstance(
        store_error(redis.exceptions.ResponseError("OOM command not allowed"), "w"), StoreUnavailableError
    )
    assert isinstance(store_error(redis.exceptions.ResponseError("MISCONF Errors writing"), "w"), StoreUnavailableError)
    assert isinstance(store_error(redis.exceptions.ConnectionError("refused"), "write"), StoreUnavailableError)
    other = store_error(redis.exceptions.ResponseError("WRONGTYPE"), "write")
    assert isinstance(other, StoreError) and not isinstance(other, StoreAuthError)


# --- local stack ACL ------------------------------------------------------------------------------


def test_acl_file_holds_only_the_password_hash_and_is_private(tmp_path: Path) -> None:
    layout = StackLayout.from_settings(Settings(dev_state_dir=tmp_path))
    path = redis_server.write_acl_file(layout, redis_server.AclUser(name="svc", password=SecretStr(ACL_SECRET)))
    text = path.read_text(encoding="ascii")
    assert ACL_SECRET not in text
    assert text.splitlines()[0] == redis_server.DEFAULT_USER_RULE
    assert text.splitlines()[1].startswith("user svc on #")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_server_command_names_the_acl_file_only_when_given(tmp_path: Path) -> None:
    layout = StackLayout.from_settings(Settings(dev_state_dir=tmp_path))
    binaries = redis_server.RedisBinaries(server=Path("rs"), search_module=Path("s.so"), json_module=Path("j.so"))
    plain = redis_server.server_command(binaries, layout, port=1, aof=False, workers=0)
    assert "--aclfile" not in plain
    acl_file = tmp_path / "users.acl"
    with_acl = redis_server.server_command(binaries, layout, port=1, aof=False, workers=0, acl_file=acl_file)
    assert with_acl[with_acl.index("--aclfile") + 1] == str(acl_file)


def test_sasl_listener_is_rendered_beside_plaintext_only_when_asked(tmp_path: Path) -> None:
    plain = kafka.render_server_properties(port=1, controller_port=2, data_dir=tmp_path)
    assert "SASL" not in plain
    listener = kafka.SaslListener(port=3, username="svc", password=SecretStr(ACL_SECRET))
    lines = kafka.render_server_properties(port=1, controller_port=2, data_dir=tmp_path, sasl=listener).splitlines()
    props = dict(line.split("=", 1) for line in lines if not line.startswith("#"))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2,SASL_PLAINTEXT://127.0.0.1:3"
    assert props["listener.security.protocol.map"].endswith(",SASL_PLAINTEXT:SASL_PLAINTEXT")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "PLAIN"
    assert f'user_svc="{ACL_SECRET}";' in props["listener.name.sasl_plaintext.plain.sasl.jaas.config"]


def test_broker_config_with_a_password_is_owner_only(tmp_path: Path) -> None:
    layout = StackLayout.from_settings(Settings(dev_state_dir=tmp_path))
    layout.kafka_config.parent.mkdir(parents=True)
    layout.kafka_config.write_text("old\n", encoding="utf-8")
    layout.kafka_config.chmod(0o644)
    listener = kafka.SaslListener(port=3, username="svc", password=SecretStr(ACL_SECRET))
    kafka.write_config(layout, layout.kafka_nodes[0], sasl=listener)
    assert stat.S_IMODE(layout.kafka_config.stat().st_mode) == 0o600
    assert "SASL_PLAINTEXT://127.0.0.1:3" in layout.kafka_config.read_text(encoding="utf-8")


def test_server_command_sets_the_aof_fsync_policy(tmp_path: Path) -> None:
    layout = StackLayout.from_settings(Settings(dev_state_dir=tmp_path))
    binaries = redis_server.RedisBinaries(server=Path("rs"), search_module=Path("s.so"), json_module=Path("j.so"))
    default = redis_server.server_command(binaries, layout, port=1, aof=True, workers=0)
    assert default[default.index("--appendfsync") + 1] == "everysec"
    always = redis_server.server_command(binaries, layout, port=1, aof=True, workers=0, appendfsync="always")
    assert always[always.index("--appendfsync") + 1] == "always"
