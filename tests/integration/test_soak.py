"""`simstream soak` end to end on the test stack: the worker subprocess, paced load, RSS and freshness.

Short (half a minute of load) and never judged on speed: it checks the run completes and that every
figure it reports is there and sane.
"""

from __future__ import annotations

import os
from pathlib import Path

from simstream.cli import build_parser
from simstream.schemas.settings import Settings
from simstream.soak import SoakOptions, format_soak, rss_kib, run_soak


def test_a_short_soak_reports_rss_and_freshness_of_the_worker_process(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, batch_max_wait_ms=100)
    options = SoakOptions(minutes=0.5, products=60, warmup_s=5.0, backlog=30, sample_interval_s=5.0)
    result = run_soak(settings, options, tmp_path, progress=print)

    assert result["worker_exit_code"] == 0
    assert result["catalog"] == 60
    assert result["sustained_per_s"] > 0
    assert abs(result["target_per_s"] - result["sustained_per_s"] / 2) < 0.02
    assert result["soak_updates"] >= 1
    assert result["records_processed"] >= 60 + 30 + result["soak_updates"]
    # A worker with torch and the model loaded is well above 100 MiB; the figures are its own, not ours.
    assert result["rss_warm_mib"] > 100 and result["rss_end_mib"] > 100
    assert len(result["rss_samples_mib"]) >= 3
    growth = 100 * (result["rss_end_mib"] - result["rss_warm_mib"]) / result["rss_warm_mib"]
    assert abs(growth - result["rss_growth_pct"]) < 0.5
    fresh = result["freshness"]
    assert fresh["samples"] >= 1 and 0 <= fresh["p50_s"] <= fresh["p99_s"]
    assert "RSS" in format_soak(result)
    assert (tmp_path / "soak-worker.log").stat().st_size > 0


def test_rss_of_a_process_is_read_from_proc() -> None:
    assert rss_kib(os.getpid()) > 1000


def test_the_soak_command_line() -> None:
    args = build_parser().parse_args(["soak", "--minutes", "5", "--json"])
    assert args.minutes == 5.0 and args.json and args.products == 2173
