"""`simstream chaos` scenarios on a small catalog: real worker processes on a private stack that the
scenarios stop and restart, so these tests never touch the session's (or the developer's) stack."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from support.chaos_checks import assert_nothing_lost

from simstream.chaos import ChaosOptions, ChaosStack, Mode, Scenario, chaos_stack, run_scenario
from simstream.producers.sink import WATCHDOG_EXIT_CODE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    # Under pytest's temporary root, which keeps the last runs: a failure's worker logs stay readable.
    root = tmp_path_factory.mktemp("chaos")
    with chaos_stack(lambda line: print(f"[chaos] {line}", file=sys.stderr, flush=True), root) as started:
        yield started


@pytest.mark.parametrize(
    ("scenario", "mode", "options"),
    [
        ("kill", "eos", ChaosOptions(products=240, kills=2, timeout_s=300)),
        # SIGKILLs while a first load defers its lists, and while it builds them
        ("kill", "alo", ChaosOptions(products=240, kills=2, timeout_s=300, first_load=True)),
        ("redis", "alo", ChaosOptions(products=150, outage_s=10, timeout_s=300)),
        ("broker", "alo", ChaosOptions(products=150, timeout_s=300)),
        # EOS: librdkafka can block in send_offsets_to_transaction when the coordinator moves; the
        # worker's watchdog then exits (70) and the scenario restarts it, as a supervisor would.
        ("broker", "eos", ChaosOptions(products=150, timeout_s=300)),
        pytest.param(
            "scale",
            "alo",
            ChaosOptions(products=240, timeout_s=300),
        ),
        ("fuzz", "eos", ChaosOptions(products=100, bad_records=200, timeout_s=300)),
    ],
)
def test_scenario_loses_nothing(chaos: ChaosStack, scenario: Scenario, mode: Mode, options: ChaosOptions) -> None:
    result = run_scenario(chaos, scenario, mode, options)
    assert_nothing_lost(result, options)
    assert result.dead_lettered == result.bad_records
    if scenario == "fuzz":
        assert result.bad_records == options.bad_records
    if scenario == "kill":
        assert result.worker_restarts == options.kills
    # Workers stopped with SIGTERM at the end (and in scale) exit cleanly; killed ones by SIGKILL;
    # only a broker restart may trip the transactional watchdog.
    allowed = {0, -9, WATCHDOG_EXIT_CODE} if scenario == "broker" else {0, -9}
    assert set(result.worker_exit_codes) <= allowed, result.worker_exit_codes
