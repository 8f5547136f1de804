"""Small runs of `bench refresh` and of `bench pipeline --catalog-size`: the list and Redis-traffic figures."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from simstream.bench_pipeline import format_pipeline_table, run_pipeline_bench
from simstream.bench_refresh import format_refresh_table, run_refresh_bench
from simstream.core import bulk_lists as core_bulk_lists
from simstream.core.encoder import TransformerEncoder
from simstream.schemas.settings import Settings


def test_refresh_bench_reports_lists_touched_searches_and_round_trips(
    redis_url: str, default_encoder: TransformerEncoder
) -> None:
    settings = Settings(redis_url=redis_url)
    result = run_refresh_bench(settings, updates=10, batch=5, catalog_limit=60, encoder=default_encoder)
    assert result["catalog"] == 60
    for key in ("initial_load", "refresh_on", "refresh_off"):
        row = result[key]
        assert row["batches"] >= 1 and row["events_per_s"] > 0
        assert row["lists_touched_per_event"] >= row["lists_recomputed_per_event"] > 0
        assert row["searches_per_event"] > 0
        assert 1 <= row["round_trips_per_batch"] <= row["redis_commands_per_batch"]
    assert result["refresh_off"]["batches"] == 2
    # Refresh off recomputes only the updated products' own lists: about one search per update.
    assert result["refresh_on"]["searches_per_event"] >= result["refresh_off"]["searches_per_event"]
    bulk = result["bulk_load"]  # the same catalog as a first load: written, then every list at once
    # Two FT.SEARCH in all: the listing of the indexed ids (a count, then the ids); no KNN.
    assert bulk["events"] == 60 and bulk["lists_emitted"] == 60 and bulk["searches"] == 2
    assert bulk["events_per_s"] > 0 and bulk["lists_s"] > 0
    assert "trips/batch" in format_refresh_table(result) and "bulk_load" in format_refresh_table(result)
    client = redis.Redis.from_url(redis_url)
    assert not list(client.scan_iter(match="bench-*", count=1000))


@pytest.fixture
def bulk_lists(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The calls bench pipeline makes to build_all_lists (which still runs)."""
    calls: list[dict[str, Any]] = []
    real = core_bulk_lists.build_all_lists

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append({"args": args, "kwargs": kwargs})
        return real(*args, **kwargs)

    monkeypatch.setattr(core_bulk_lists, "build_all_lists", recording)
    return calls


def test_pipeline_bench_on_a_generated_catalog_reports_setup_and_redis_traffic(
    kafka_bootstrap: str, redis_url: str, default_encoder: TransformerEncoder, bulk_lists: list[dict[str, Any]]
) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, batch_max_wait_ms=50)
    result = run_pipeline_bench(
        settings, catalog_limit=30, catalog_size=90, encode_budget_s=0, backlog=20, paced_seconds=2,
        encoder=default_encoder,
    )  # fmt: skip
    setup = result["setup"]
    assert setup["generated"] == 60 and setup["generated_source"] == {"reencoded_variants": 0, "synthesised": 60}
    assert setup["generate_s"] > 0 and setup["write_products_per_s"] > 0 and setup["lists_s"] >= 0
    (call,) = bulk_lists
    assert call["args"][3] == default_encoder.model_id and call["kwargs"]["device"] in ("cpu", "cuda")
    assert result["config"]["catalog"] == 90 and result["config"]["real_offers"] == 30
    assert result["load"]["events"] == 30 and result["saturate"]["events"] == 20
    saturate = result["saturate"]
    assert saturate["batches"] >= 1 and 1 <= saturate["round_trips_per_batch"] <= saturate["redis_commands_per_batch"]
    assert saturate["searches_per_update"] > 0
    assert saturate["redis_traffic"]["by_command"]["FT.SEARCH"] > 0
    assert "60 generated products" in format_pipeline_table(result)
    client = redis.Redis.from_url(redis_url)
    assert not list(client.scan_iter(match="bench-pipe-*", count=1000))


def test_pipeline_bench_refuses_a_catalog_size_below_the_real_offers(redis_url: str) -> None:
    with pytest.raises(ValueError, match="below"):
        run_pipeline_bench(Settings(redis_url=redis_url), catalog_limit=30, catalog_size=20)
