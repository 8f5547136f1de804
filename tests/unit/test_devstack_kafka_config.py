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
    argv = kafka.broker_command(layout, layout.kafka_nodes[0], tmp_path / "libs", tmp_path / "log4j2.properties")
    assert argv[-2:] == ["kafka.Kafka", str(layout.kafka_config)]
    assert kafka.libs_of(argv) == tmp_path / "libs"
    assert "-XX:+UseSerialGC" in argv
    assert "-Xmx512m" in argv


def test_a_single_node_keeps_its_original_paths_and_no_replication_settings(tmp_path: Path) -> None:
    layout = StackLayout.from_settings(Settings(dev_state_dir=tmp_path))
    (node,) = layout.kafka_nodes
    assert (node.service, node.config, node.data_dir) == ("kafka", layout.kafka_config, layout.kafka_data_dir)
    assert node.config == tmp_path.resolve() / "kafka" / "server.properties"
    assert node.pid_file == layout.pid_file("kafka")
    assert layout.kafka_bootstrap == "127.0.0.1:9092"
    props = _parse(kafka.render_server_properties(port=1, controller_port=2, data_dir=tmp_path))
    assert "default.replication.factor" not in props
    assert "min.insync.replicas" not in props
    assert "controller.quorum.voters" not in props


def _cluster(tmp_path: Path) -> StackLayout:
    settings = Settings(
        dev_state_dir=tmp_path,
        dev_kafka_brokers=3,
        dev_kafka_port=19092,
        dev_kafka_controller_port=19093,
        dev_kafka_peer_ports=[19192, 19292],
        dev_kafka_peer_controller_ports=[19193, 19293],
    )
    return StackLayout.from_settings(settings)


def test_a_three_node_cluster_is_three_voters_with_replication_3_and_min_isr_2(tmp_path: Path) -> None:
    layout = _cluster(tmp_path)
    assert [(n.node_id, n.port, n.controller_port) for n in layout.kafka_nodes] == [
        (1, 19092, 19093),
        (2, 19192, 19193),
        (3, 19292, 19293),
    ]
    assert layout.kafka_bootstrap == "127.0.0.1:19092,127.0.0.1:19192,127.0.0.1:19292"
    for node in layout.kafka_nodes:
        kafka.write_config(layout, node)
        props = _parse(node.config.read_text(encoding="utf-8"))
        assert props["node.id"] == str(node.node_id)
        assert props["process.roles"] == "broker,controller"
        assert props["controller.quorum.voters"] == "1@127.0.0.1:19093,2@127.0.0.1:19193,3@127.0.0.1:19293"
        assert "controller.quorum.bootstrap.servers" not in props
        assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
        assert props["log.dirs"] == str(node.data_dir)
        assert props["default.replication.factor"] == "3"
        assert props["min.insync.replicas"] == "2"
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.replication.factor"] == "3"
        assert props["transaction.state.log.min.isr"] == "2"
    # Every node has its own files, apart from the single node's, so one state dir can hold either.
    files = [(n.config, n.data_dir, n.pid_file, n.log_file, n.logs_dir) for n in layout.kafka_nodes]
    assert len({path for group in files for path in group}) == 15


def test_cluster_nodes_get_a_smaller_heap_and_one_shared_cluster_id(tmp_path: Path) -> None:
    layout = _cluster(tmp_path)
    layout.kafka_cluster_id_file.parent.mkdir(parents=True)
    node = layout.kafka_nodes[1]
    argv = kafka.broker_command(layout, node, tmp_path / "libs", tmp_path / "log4j2.properties")
    assert "-Xmx384m" in argv
    assert "-Xmx512m" not in argv
    assert argv[-1] == str(node.config)
    first = kafka.cluster_id(layout)
    assert len(first) == 22
    assert kafka.cluster_id(layout) == first


def test_peer_ports_default_to_the_pairs_after_the_first_node() -> None:
    settings = Settings(dev_kafka_brokers=3)
    assert settings.dev_kafka_node_ports() == [(9092, 9093), (9094, 9095), (9096, 9097)]


@pytest.mark.parametrize(
    "fields",
    [
        {"dev_kafka_brokers": 3, "dev_kafka_peer_ports": [1]},  # too few for nodes 2 and 3
        {"dev_kafka_brokers": 2, "dev_kafka_peer_ports": [9093]},  # the first node's controller port
        {"dev_kafka_brokers": 0},
    ],
)
def test_bad_cluster_settings_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="dev_kafka"):
        Settings.model_validate(fields)


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


def test_dev_status_without_the_option_shows_the_cluster_the_last_up_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from simstream.cli import main

    monkeypatch.setenv("SIMSTREAM_DEV_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("SIMSTREAM_DEV_KAFKA_BROKERS", raising=False)
    assert main(["dev", "status"]) == 1  # nothing runs
    assert "kafka-1" not in capsys.readouterr().out
    layout = StackLayout.from_settings(Settings(dev_state_dir=tmp_path, dev_kafka_brokers=3))
    layout.kafka_nodes_file.parent.mkdir(parents=True)
    layout.kafka_nodes_file.write_text("3\n", encoding="ascii")  # as `up --kafka-brokers 3` leaves it
    assert main(["dev", "status"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["kafka", "kafka-1", "kafka-2", "kafka-3", "redis"]
    assert "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096" in lines[0]
    assert main(["dev", "status", "--kafka-brokers", "1"]) == 1
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["kafka", "redis"]
    assert main(["dev", "status", "--kafka-brokers", "9"]) == 2
    assert "invalid settings" in capsys.readouterr().err
