"""`simstream chaos --scenario broker3`: a node of a three-node Kafka cluster SIGKILLed mid-stream and
started again, on a private stack of its own (the cluster), in both delivery modes."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from support.chaos_checks import assert_nothing_lost

from simstream.chaos import KAFKA_NODES, ChaosOptions, ChaosStack, Mode, chaos_stack, run_scenario
from simstream.devstack import stack
from simstream.producers.sink import WATCHDOG_EXIT_CODE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster_chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    root = tmp_path_factory.mktemp("chaos-cluster")
    with chaos_stack(_to_stderr, root, kafka_nodes=KAFKA_NODES["broker3"]) as started:
        yield started


def _to_stderr(line: str) -> None:
    print(f"[chaos] {line}", file=sys.stderr, flush=True)


@pytest.mark.parametrize("mode", ["eos", "alo"])
def test_a_killed_kafka_node_loses_nothing(cluster_chaos: ChaosStack, mode: Mode) -> None:
    options = ChaosOptions(products=150, timeout_s=300)
    result = run_scenario(cluster_chaos, "broker3", mode, options)
    print(f"[chaos] broker3 {mode}: {result.as_dict()}", file=sys.stderr)
    assert_nothing_lost(result, options)
    # The node is down for a while, so the committed output shows a gap; the figure is what matters.
    assert result.stall_s > 0
    assert set(result.worker_exit_codes) <= {0, WATCHDOG_EXIT_CODE}, result.worker_exit_codes
    (kafka,) = stack.status(cluster_chaos.settings, services=["kafka"])
    assert kafka.running, kafka.detail  # the killed node is back
