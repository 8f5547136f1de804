"""Small runs of `bench redis` and `bench pipeline` on the real stack: every figure present and sane."""

from __future__ import annotations

import redis

from simstream.bench_pipeline import format_pipeline_table, run_pipeline_bench
from simstream.bench_redis import run_redis_bench
from simstream.schemas.settings import Settings


def test_redis_bench_reports_ingest_latency_and_recall_and_cleans_up(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url)
    result = run_redis_bench(settings, sizes=[300], queries=20, encode_budget_s=0, m=8, ef_runtime=50)
    (row,) = result["sizes"]
    assert row["vectors"] == 300 and row["ingest_vectors_per_s"] > 0
    for kind in ("knn_pure", "knn_filtered"):
        assert row[kind]["queries"] == 20
        assert 0 < row[kind]["p50_ms"] <= row[kind]["p99_ms"]
        assert 0.5 <= row[kind]["recall_at_10"] <= 1.0
    assert result["config"]["m"] == 8 and result["config"]["ef_runtime"] == 50
    assert result["vector_source"] == {"catalog_texts": 300, "reencoded_variants": 0, "synthesised": 0}
    client = redis.Redis.from_url(redis_url)
    assert not list(client.scan_iter(match="bench-redis-*", count=1000))


def test_pipeline_bench_reports_rates_freshness_and_encoder_ratio(kafka_bootstrap: str, redis_url: str) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, batch_max_wait_ms=50)
    result = run_pipeline_bench(settings, catalog_limit=40, backlog=20, paced_seconds=2, paced_rates=[4.0])
    assert result["load"]["events"] == 40 and result["saturate"]["events"] == 20
    assert result["saturate"]["products_per_s"] > 0
    (fixed,) = result["paced_at"]  # an absolute rate: 8 updates in 2 s, whatever the sustained figure
    assert fixed["target_per_s"] == 4.0 and fixed["events"] == 8
    for row in (result["paced_50"], result["paced_90"], fixed):
        fresh = row["freshness"]
        assert fresh["samples"] >= 1 and 0 < fresh["p50_s"] <= fresh["p99_s"]
    assert "paced at (4.0/s" in format_pipeline_table(result)
    assert result["encoder_only"]["items"] == 20
    assert result["pipeline_vs_encoder"] > 0
