"""`simstream bench refresh`: what reverse-neighbour refresh costs, on the Abt-Buy catalog.

In-process pipeline on the real Redis (no Kafka: this isolates the list work): load the catalog,
then apply the same kind of updates (a title edit: a word dropped or swapped) with refresh on and
off, and report updates/s and the average number of lists recomputed and emitted per update.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

from simstream.core.encoder import Encoder, TransformerEncoder
from simstream.core.list_store import ListStore
from simstream.core.namespace import clear_redis_namespace
from simstream.core.pipeline import Inbound, Pipeline, RefreshPolicy
from simstream.core.redis_client import make_redis_client
from simstream.core.similarity import SimilarityPolicy
from simstream.core.vector_store import RedisVectorStore
from simstream.demo import sample_catalog
from simstream.producers.catalog import read_catalog
from simstream.producers.publish import product_event
from simstream.schemas.events import ProductEvent
from simstream.schemas.settings import Settings

LOAD_BATCH = 64


def _edit(product: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    words = product["title"].split()
    if len(words) > 3:
        del words[rng.randrange(len(words))]
    if len(words) > 2:
        i, j = rng.sample(range(len(words)), 2)
        words[i], words[j] = words[j], words[i]
    return {**product, "title": " ".join(words)}


def _run(pipeline: Pipeline, events: Sequence[ProductEvent], batch: int) -> dict[str, float]:
    recomputed = emitted = 0
    started = time.perf_counter()
    for start in range(0, len(events), batch):
        inbound: list[Inbound] = [pipeline.prepare(e, time.time()) for e in events[start : start + batch]]
        result = pipeline.process(inbound)
        pipeline.commit(result)
        recomputed += result.recomputed
        emitted += len(result.lists)
    seconds = time.perf_counter() - started
    return {
        "events": len(events),
        "seconds": round(seconds, 3),
        "events_per_s": round(len(events) / seconds, 2),
        "lists_recomputed_per_event": round(recomputed / len(events), 2),
        "lists_emitted_per_event": round(emitted / len(events), 2),
    }


def run_refresh_bench(
    settings: Settings, *, updates: int = 200, batch: int = 32, seed: int = 0, encoder: Encoder | None = None
) -> dict[str, Any]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    private = settings.model_copy(
        update={"redis_prefix": f"{name}:", "index_name": f"{name}-idx", "index_alias": f"{name}-alias"}
    )
    model = encoder or TransformerEncoder.from_settings(private)
    client = make_redis_client(private)
    store = RedisVectorStore.from_settings(private, client)
    store.ensure_index(model.dim, model.model_id)
    lists = ListStore.from_settings(private, client)
    policy = SimilarityPolicy.from_settings(private)

    def pipeline(enabled: bool) -> Pipeline:
        refresh = RefreshPolicy(enabled=enabled, fanout=private.refresh_fanout, epsilon=private.list_score_epsilon)
        return Pipeline(model, store, lists, policy, text_template=private.text_template, refresh=refresh)

    abt, buy = sample_catalog()
    rows = [*read_catalog(abt, id_prefix="abt-"), *read_catalog(buy, id_prefix="buy-")]
    rng = random.Random(seed)
    try:
        load = _run(pipeline(True), [product_event(r.product_id, 1, r.product) for r in rows], LOAD_BATCH)
        picked = rng.sample(rows, 2 * updates)
        on = _run(
            pipeline(True), [product_event(r.product_id, 2, _edit(r.product, rng)) for r in picked[:updates]], batch
        )
        off = _run(
            pipeline(False), [product_event(r.product_id, 2, _edit(r.product, rng)) for r in picked[updates:]], batch
        )
    finally:
        clear_redis_namespace(private, client)
    return {
        "catalog": len(rows),
        "batch": batch,
        "top_k": private.top_k,
        "fanout": private.refresh_fanout,
        "initial_load": load,
        "refresh_on": on,
        "refresh_off": off,
        "on_vs_off_speed": round(on["events_per_s"] / off["events_per_s"], 3),
    }


def format_refresh_table(result: dict[str, Any]) -> str:
    lines = [
        f"catalog {result['catalog']} products, top_k {result['top_k']}, fan-out {result['fanout']}, "
        f"update batches of {result['batch']}",
        f"{'run':14} {'events':>7} {'events/s':>9} {'recomputed/event':>17} {'emitted/event':>14}",
    ]
    for key in ("initial_load", "refresh_on", "refresh_off"):
        row = result[key]
        lines.append(
            f"{key:14} {row['events']:>7} {row['events_per_s']:>9} "
            f"{row['lists_recomputed_per_event']:>17} {row['lists_emitted_per_event']:>14}"
        )
    lines.append(f"updates/s with refresh on vs off: {result['on_vs_off_speed']}x")
    return "\n".join(lines)
