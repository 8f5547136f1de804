"""`simstream bench refresh`: what reverse-neighbour refresh costs, on the Abt-Buy catalog.

In-process pipeline on the real Redis (no Kafka: this isolates the list work): load the catalog,
then apply the same kind of updates (a title edit: a word dropped or swapped) with refresh on and
off, and report updates/s, the lists examined, recomputed and emitted per update, and the Redis
traffic (simstream/redis_traffic.py): FT.SEARCH commands per update, round trips and commands per batch.
The catalog is loaded twice, in two namespaces: through the incremental path batch by batch
(``initial_load``), and as a first load does it (``bulk_load``: products written with no list work,
then every list built once by core/bulk_lists); the updates then run on the bulk-loaded one.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

from simstream.core.encoder import Encoder, TransformerEncoder
from simstream.core.frozen_heap import frozen_heap
from simstream.core.list_store import ListStore
from simstream.core.namespace import clear_redis_namespace
from simstream.core.pipeline import Inbound, Pipeline, RefreshPolicy
from simstream.core.redis_client import make_redis_client
from simstream.core.scoring import resolve_device
from simstream.core.similarity import SimilarityPolicy
from simstream.core.terms import TermsStore
from simstream.core.vector_store import RedisVectorStore
from simstream.demo import sample_catalog
from simstream.producers.catalog import read_catalog
from simstream.producers.publish import product_event
from simstream.redis_traffic import count_redis_traffic
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
    recomputed = emitted = touched = batches = 0
    with count_redis_traffic() as traffic:
        started = time.perf_counter()
        for start in range(0, len(events), batch):
            inbound: list[Inbound] = [pipeline.prepare(e, time.time()) for e in events[start : start + batch]]
            result = pipeline.process(inbound)
            pipeline.commit(result)
            recomputed += result.recomputed
            touched += result.touched
            emitted += len(result.lists)
            batches += 1
        seconds = time.perf_counter() - started
    return {
        "events": len(events),
        "batches": batches,
        "seconds": round(seconds, 3),
        "events_per_s": round(len(events) / seconds, 2),
        "lists_touched_per_event": round(touched / len(events), 2),
        "lists_recomputed_per_event": round(recomputed / len(events), 2),
        "lists_emitted_per_event": round(emitted / len(events), 2),
        "searches_per_event": round(traffic.commands["FT.SEARCH"] / len(events), 2),
        "round_trips_per_batch": round(traffic.round_trips / batches, 2),
        "redis_commands_per_batch": round(traffic.total_commands / batches, 2),
    }


def _bulk_load(pipeline: Pipeline, events: Sequence[ProductEvent], device: str) -> dict[str, float | str]:
    with count_redis_traffic() as traffic:
        started = time.perf_counter()
        for start in range(0, len(events), LOAD_BATCH):
            inbound = [pipeline.prepare(e, time.time()) for e in events[start : start + LOAD_BATCH]]
            pipeline.process(inbound, list_work=False)
        written = time.perf_counter() - started
        report = pipeline.build_all_lists(emit=None)
        seconds = time.perf_counter() - started
    return {
        "events": len(events),
        "seconds": round(seconds, 3),
        "events_per_s": round(len(events) / seconds, 2),
        "write_s": round(written, 3),
        "lists_s": round(report.seconds, 3),
        "lists_score_s": round(report.score_s, 3),
        "lists_emitted": report.emitted,
        "searches": traffic.commands["FT.SEARCH"],
        "round_trips": traffic.round_trips,
        "device": device,
    }


def run_refresh_bench(
    settings: Settings,
    *,
    updates: int = 200,
    batch: int = 32,
    seed: int = 0,
    catalog_limit: int | None = None,
    encoder: Encoder | None = None,
) -> dict[str, Any]:
    abt, buy = sample_catalog()
    rows = [*read_catalog(abt, id_prefix="abt-"), *read_catalog(buy, id_prefix="buy-")][:catalog_limit]
    if 2 * updates > len(rows):
        raise ValueError(f"{updates} updates per mode need {2 * updates} products, the catalog has {len(rows)}")
    name = f"bench-{uuid.uuid4().hex[:8]}"

    def namespace(suffix: str) -> Settings:
        prefix = f"{name}{suffix}"
        return settings.model_copy(
            update={"redis_prefix": f"{prefix}:", "index_name": f"{prefix}-idx", "index_alias": f"{prefix}-alias"}
        )

    private, incremental = namespace(""), namespace("-inc")
    model = encoder or TransformerEncoder.from_settings(private)
    client = make_redis_client(private)
    policy = SimilarityPolicy.from_settings(private)

    def pipeline(enabled: bool, where: Settings = private) -> Pipeline:
        store = RedisVectorStore.from_settings(where, client)
        store.ensure_index(model.dim, model.model_id)
        lists = ListStore.from_settings(where, client)
        refresh = RefreshPolicy(enabled=enabled, fanout=where.refresh_fanout, epsilon=where.list_score_epsilon)
        terms = TermsStore(client, store.keys)  # as the worker scores: a first load counts a snapshot
        return Pipeline(model, store, lists, policy, text_template=where.text_template, refresh=refresh, terms=terms)

    rng = random.Random(seed)
    creates = [product_event(r.product_id, 1, r.product) for r in rows]
    try:
        with frozen_heap():  # as the worker runs (consumers/worker.py)
            load = _run(pipeline(True, incremental), creates, LOAD_BATCH)
            clear_redis_namespace(incremental, client)
            bulk = _bulk_load(pipeline(True), creates, resolve_device(private.device))
            picked = rng.sample(rows, 2 * updates)
            on = _run(
                pipeline(True), [product_event(r.product_id, 2, _edit(r.product, rng)) for r in picked[:updates]], batch
            )
            off = _run(
                pipeline(False),
                [product_event(r.product_id, 2, _edit(r.product, rng)) for r in picked[updates:]],
                batch,
            )
    finally:
        clear_redis_namespace(incremental, client)
        clear_redis_namespace(private, client)
    return {
        "catalog": len(rows),
        "batch": batch,
        "top_k": private.top_k,
        "fanout": private.refresh_fanout,
        "initial_load": load,
        "bulk_load": bulk,
        "refresh_on": on,
        "refresh_off": off,
        "on_vs_off_speed": round(on["events_per_s"] / off["events_per_s"], 3),
    }


def format_refresh_table(result: dict[str, Any]) -> str:
    lines = [
        f"catalog {result['catalog']} products, top_k {result['top_k']}, fan-out {result['fanout']}, "
        f"update batches of {result['batch']}",
        f"{'run':14} {'events':>7} {'events/s':>9} {'touched':>8} {'recomputed':>11} {'emitted':>8} "
        f"{'searches':>9} {'trips/batch':>12} {'cmds/batch':>11}",
    ]
    for key in ("initial_load", "refresh_on", "refresh_off"):
        row = result[key]
        lines.append(
            f"{key:14} {row['events']:>7} {row['events_per_s']:>9} {row['lists_touched_per_event']:>8} "
            f"{row['lists_recomputed_per_event']:>11} {row['lists_emitted_per_event']:>8} "
            f"{row['searches_per_event']:>9} {row['round_trips_per_batch']:>12} {row['redis_commands_per_batch']:>11}"
        )
    bulk = result["bulk_load"]
    lines.append(
        f"{'bulk_load':14} {bulk['events']:>7} {bulk['events_per_s']:>9}  (write {bulk['write_s']} s, lists "
        f"{bulk['lists_s']} s of which scoring {bulk['lists_score_s']} s on {bulk['device']}; "
        f"{bulk['searches']} FT.SEARCH, {bulk['round_trips']} round trips in all)"
    )
    lines.append("touched, recomputed, emitted: lists per event; searches: FT.SEARCH commands per event")
    lines.append(f"updates/s with refresh on vs off: {result['on_vs_off_speed']}x")
    return "\n".join(lines)
