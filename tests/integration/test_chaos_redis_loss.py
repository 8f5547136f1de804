"""`simstream chaos --scenario redis-kill / redis-restore`: Redis loses acknowledged (and committed)
writes mid-stream, by a SIGKILL whose AOF loses its un-fsynced tail or by a restore from an older RDB
snapshot; the worker notices that Redis is behind what it committed and replays, in both delivery modes."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from support.chaos_checks import assert_nothing_lost

from simstream.chaos import ChaosOptions, ChaosStack, Mode, Scenario, chaos_stack, run_scenario

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    root = tmp_path_factory.mktemp("chaos-redis-loss")
    with chaos_stack(lambda line: print(f"[chaos] {line}", file=sys.stderr, flush=True), root) as started:
        yield started


@pytest.mark.parametrize(
    ("scenario", "mode", "options"),
    [
        ("redis-kill", "eos", ChaosOptions(products=200, redis_kills=2, timeout_s=300)),
        ("redis-kill", "alo", ChaosOptions(products=150, redis_kills=2, timeout_s=300)),
        ("redis-restore", "eos", ChaosOptions(products=150, timeout_s=300)),
        ("redis-restore", "alo", ChaosOptions(products=150, timeout_s=300)),
    ],
)
def test_redis_losing_acknowledged_writes_loses_nothing(
    chaos: ChaosStack, scenario: Scenario, mode: Mode, options: ChaosOptions
) -> None:
    result = run_scenario(chaos, scenario, mode, options)
    # The fault really took acknowledged writes away, every time...
    expected_faults = options.redis_kills if scenario == "redis-kill" else 1
    assert len(result.redis_lost_records) == expected_faults
    assert all(lost > 0 for lost in result.redis_lost_records), result.redis_lost_records
    # ... and the replay brought every one back.
    assert_nothing_lost(result, options)
    assert set(result.worker_exit_codes) == {0}, result.worker_exit_codes
