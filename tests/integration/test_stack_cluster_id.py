"""A Kafka cluster id may start with "-" (urlsafe base64, one fresh stack in 64): `dev up` still
formats the storage and starts the broker."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest

from simstream.devstack import stack
from simstream.devstack.layout import StackLayout
from simstream.devstack.ports import free_ports
from simstream.schemas.settings import Settings

pytestmark = pytest.mark.integration


def test_a_cluster_id_that_starts_with_a_dash_formats_and_starts(tmp_path: Path) -> None:
    kafka_port, controller_port = free_ports(2)
    settings = Settings(dev_state_dir=tmp_path, dev_kafka_port=kafka_port, dev_kafka_controller_port=controller_port)
    layout = StackLayout.from_settings(settings)
    cluster_id = base64.urlsafe_b64encode(b"\xfb" + uuid.uuid4().bytes[1:]).rstrip(b"=").decode()
    assert cluster_id.startswith("-")
    layout.kafka_cluster_id_file.parent.mkdir(parents=True, exist_ok=True)
    layout.kafka_cluster_id_file.write_text(cluster_id + "\n", encoding="ascii")
    try:
        stack.up(settings, progress=lambda _line: None, services=["kafka"])
        (kafka,) = stack.status(settings, services=["kafka"])
        assert kafka.running
    finally:
        stack.down(settings, progress=lambda _line: None, services=["kafka"])
