"""What every chaos scenario must end with, whatever its fault."""

from __future__ import annotations

from simstream.chaos import ChaosOptions, ScenarioResult


def assert_nothing_lost(result: ScenarioResult, options: ChaosOptions) -> None:
    """Every product processed and current, lists exact, and no duplicate in exactly-once mode."""
    assert result.published == options.products
    assert result.lost == 0, result.as_dict()
    assert result.processed == result.published
    assert result.verify_ok, (result.verify_failures, result.verify_details)
    if result.mode == "eos":
        assert result.duplicated == 0, result.as_dict()
