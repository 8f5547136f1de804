"""An indexed ``kth`` that lags below its pool's bound (PREPARE leaves small rises unwritten): the
reverse searches find more candidates, their exact scores turn them away, the lists stay exact, and
a pool that no change alters is not written again."""

from __future__ import annotations

import pytest
from support.pipelines import commit_in_batches, pipeline_for, process
from support.streaming import event

from simstream.chaos import abt_buy_products
from simstream.core.audit import Thresholds, threshold_failures
from simstream.core.encoder import TransformerEncoder
from simstream.core.pools import COMPLETE
from simstream.core.redis_client import make_redis_client
from simstream.schemas.settings import Settings
from simstream.verify import run_verify

pytestmark = pytest.mark.integration

CATALOG = 60
EDITED = 6
LAG = 0.3  # far more than PREPARE ever leaves: most pools near an edited product become candidates


def test_candidates_of_a_lagging_kth_are_scored_and_turned_away(
    small_pools: Settings, default_encoder: TransformerEncoder
) -> None:
    settings = small_pools
    products = dict(abt_buy_products(CATALOG))
    ids = list(products)
    pipeline, _, lists = pipeline_for(settings, default_encoder)
    commit_in_batches(pipeline, [event(pid, 1, products[pid]) for pid in ids], 20)

    client = make_redis_client(settings)
    before = lists.read_states(ids)
    lowered = 0
    for pid, state in before.items():
        assert state.pool is not None
        if state.pool.bound > COMPLETE:
            client.hset(lists.keys.product(pid), "kth", state.pool.bound - LAG)
            lowered += 1
    assert lowered > CATALOG // 2, "most pools must be full for a lower kth to admit anything"

    edited = ids[:EDITED]
    result = process(
        pipeline, [event(pid, 2, {**products[pid], "title": products[pid]["title"] + " refurbished"}) for pid in edited]
    )
    pipeline.commit(result)

    after = lists.read_states(ids)
    others = [pid for pid in ids if pid not in edited]
    rewritten = [pid for pid in others if after[pid].revision != before[pid].revision]
    same_pool_rewritten = [pid for pid in rewritten if after[pid].pool == before[pid].pool]
    assert same_pool_rewritten == [], "a pool that no change altered was written again"
    assert result.touched > len(rewritten) + EDITED, "no candidate was turned away: a test of nothing"
    report = run_verify(settings, check_output=False)
    assert threshold_failures(report, Thresholds()) == [], report.lowest_overlap
