"""`simstream chaos --scenario acl-restart`: the worker logs in as the ACL user of a Redis (AOF on,
default user off) that is stopped and started mid-stream; the restart replays every write."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from support.chaos_checks import assert_nothing_lost

from simstream.chaos import ChaosOptions, ChaosStack, chaos_stack, run_scenario

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    root = tmp_path_factory.mktemp("chaos-acl")
    with chaos_stack(lambda line: print(f"[chaos] {line}", file=sys.stderr, flush=True), root) as started:
        yield started


def test_a_restart_of_the_acl_redis_mid_stream_loses_nothing(chaos: ChaosStack) -> None:
    options = ChaosOptions(products=150, timeout_s=300)
    result = run_scenario(chaos, "acl-restart", "alo", options)
    assert_nothing_lost(result, options)
    assert set(result.worker_exit_codes) == {0}
    assert chaos.acl_settings is not None  # the scenario ran against the ACL Redis
    assert chaos.acl_log_lines("NOPERM") == 0
