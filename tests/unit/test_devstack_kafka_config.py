"""Kafka config rendering and jar-cache bookkeeping of the devstack (no network, no JVM)."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import pytest

from simstream.devstack import kafka
from simstream.devstack.errors import DevStackError
from simstream.devstack.layout import StackLayout, kafka_cache_dir
from simstream.schemas.settings import Settings


def _parse(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return {key: value for key, value in pairs}


def test_server_properties_make_a_single_node_kraft_broker_on_loopback(tmp_path: Path) -> None:
    props = _parse(kafka.render_server_properties(port=19092, controller_port=19093, data_dir=tmp_path))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == props["listeners"]
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == str(tmp_path)


def test_server_properties_let_groups_and_transactions_work_on_one_node(tmp_path: Path) -> None:
    props = _parse(kafka.render_server_properties(port=1, controller_port=2, data_dir=tmp_path))
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert int(props["log.cleaner.dedupe.buffer.size"]) <= 16 * 1024 * 1024


def test_broker_command_carries_the_config_path_as_its_identity(tmp_path: Path) -> None:
    layout = StackLayout.from_settings(Settings(dev_state_dir=tmp_path))
    argv = kafka.broker_command(layout, tmp_path / "libs", tmp_path / "log4j2.properties")
    assert argv[-2:] == ["kafka.Kafka", str(layout.kafka_config)]
    assert kafka.libs_of(argv) == tmp_path / "libs"
    assert "-XX:+UseSerialGC" in argv


def test_broker_version_comes_from_the_broker_jar_name(tmp_path: Path) -> None:
    for jar in ("kafka-clients-4.1.1.jar", "kafka_2.13-4.1.1.jar", "scala-library-2.13.16.jar"):
        (tmp_path / jar).touch()
    assert kafka.broker_version(tmp_path) == "4.1.1"
    assert kafka.broker_version(tmp_path / "missing") is None


def test_complete_jar_cache_is_reused_without_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "kafka_2.13-4.1.1.jar").touch()
    pom = resources.files("simstream.devstack").joinpath("pom.xml").read_bytes()
    (libs / ".simstream-complete").write_text(f"4.1.1 {hashlib.sha256(pom).hexdigest()}\n")
    monkeypatch.setattr("shutil.which", lambda _: None)  # a fetch attempt would fail loudly
    progress: list[str] = []
    assert kafka.ensure_jars(cache_dir=tmp_path, kafka_version="4.1.1", progress=progress.append) == libs
    assert progress == []


def test_incomplete_jar_cache_needs_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "libs").mkdir()  # jars without the completion marker: an interrupted fetch
    monkeypatch.setattr("shutil.which", lambda _: None)
    with pytest.raises(DevStackError, match="Maven"):
        kafka.ensure_jars(cache_dir=tmp_path, kafka_version="4.1.1", progress=lambda _: None)


def test_jar_cache_defaults_outside_the_repo_per_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert kafka_cache_dir(Settings(dev_kafka_version="4.0.1")) == tmp_path / "simstream" / "kafka-4.0.1"
    assert kafka_cache_dir(Settings(dev_kafka_cache_dir=tmp_path / "jars")) == tmp_path / "jars"


def test_packaged_pom_pins_the_dependency_plugin_and_logging_runtime() -> None:
    pom = resources.files("simstream.devstack").joinpath("pom.xml").read_text()
    assert "<version>3.11.0</version>" in pom
    for artifact in ("kafka_2.13", "slf4j-api", "log4j-core", "log4j-slf4j2-impl"):
        assert f"<artifactId>{artifact}</artifactId>" in pom
    assert resources.files("simstream.devstack").joinpath("log4j2.properties").is_file()
