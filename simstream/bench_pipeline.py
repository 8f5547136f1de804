"""``simstream bench pipeline``: the worker through the real Kafka and Redis.

The real worker runs in a thread of this process on private topics, group, index and key prefix.
0. setup (only with ``catalog_size`` above the real offers): a generated catalog is written straight to
   Redis first, as an existing catalog the stream arrives on: variants of the real texts, re-encoded
   within an encode budget, then synthesised vectors (bench_redis.build_corpus), upserted in pipelined
   blocks, and their lists built in bulk (core/bulk_lists). Seconds to generate, write and list.
1. load: the Abt-Buy catalog (creates at version 1) is published as a backlog; products/s until it
   is drained and every list emitted. On an empty index that is a first load (core/first_load: the
   products written, then every list built once in bulk); on a generated catalog these are new
   products entering lists that already exist (the incremental path).
2. saturate: a backlog of updates to real offers (a title word dropped and two swapped: re-encode +
   refresh); products/s to drain it is the sustained rate. Redis traffic is counted meanwhile
   (simstream/redis_traffic.py, process-wide: the worker's batches and its polls of Redis, such as
   its position checks): round trips and commands per batch, FT.SEARCH commands per update.
3. paced: updates published at 50% and 90% of that rate; freshness (Kafka record timestamp, set when
   produced, to the batch's lists being delivered and committed) p50/p99 from the worker's samples.
   Then at each of ``paced_rates`` (updates/s, absolute): rates that do not move with the sustained
   figure, so that the freshness of two versions, or of two runs on a noisy machine, compares at the
   same load.
4. encoder only: ``TransformerEncoder.encode`` on the same update texts, worker stopped; the pipeline's
   ratio to it says what Kafka, Redis and the list work cost on top of the model.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from simstream.bench_redis import Corpus, build_corpus, percentile, perturb_text
from simstream.consumers.stats import WorkerStats
from simstream.consumers.worker import Worker, build_worker
from simstream.core import bulk_lists
from simstream.core.encoder import Encoder, TransformerEncoder
from simstream.core.errors import SimstreamError
from simstream.core.list_store import ListStore
from simstream.core.namespace import clear_redis_namespace, namespace_fields
from simstream.core.redis_client import make_redis_client
from simstream.core.scoring import resolve_device
from simstream.core.similarity import SimilarityPolicy
from simstream.core.terms import TermsStore
from simstream.core.text import build_text, content_hash
from simstream.core.vector_store import ProductWrite, RedisVectorStore
from simstream.demo import sample_catalog
from simstream.producers.catalog import CatalogRow, read_catalog
from simstream.producers.publish import product_event
from simstream.redis_traffic import RedisTraffic, count_redis_traffic
from simstream.schemas.codec import encode_event
from simstream.schemas.events import ProductEvent
from simstream.schemas.settings import Settings, kafka_client_config

PACED_FRACTIONS = (0.5, 0.9)
DRAIN_TIMEOUT_S = 600.0
WRITE_BLOCK = 256  # generated products per pipelined upsert
GENERATED_PREFIX = "gen-"


class BenchError(SimstreamError):
    """The benchmark could not complete (the worker crashed or a phase did not drain in time)."""


def paced_schedule(count: int, rate: float) -> list[float]:
    """Send offsets (seconds from the start) for ``count`` events at ``rate`` per second."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    return [i / rate for i in range(count)]


class _BenchWorker:
    def __init__(self, settings: Settings, encoder: Encoder) -> None:
        self.stats = WorkerStats()
        self.worker: Worker = build_worker(settings, stats=self.stats, encoder=encoder)
        self.first_load_begun = self.first_load_pending()  # the worker started on an empty index
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        # Reads the group's committed offsets without joining the group.
        self._probe = Consumer({**kafka_client_config(settings), "group.id": settings.group_id})
        topic = settings.input_topic
        metadata = self._probe.list_topics(topic, timeout=10).topics[topic]
        self._partitions = [TopicPartition(topic, p) for p in metadata.partitions]

    def _run(self) -> None:
        try:
            self.worker.run(stop_when=self._stop.is_set)
        except BaseException as exc:  # reported by wait_done/stop
            self.error = exc

    def done(self) -> int:
        """Records committed by the worker's group: processed, written and delivered."""
        committed = self._probe.committed(self._partitions, timeout=10)
        return sum(max(tp.offset, 0) for tp in committed)

    def wait_done(self, target: int, timeout_s: float = DRAIN_TIMEOUT_S) -> float:
        """Wait until ``target`` records are processed; the monotonic time it happened (polled every 20 ms).

        Also waits for the worker to account for them: it commits offsets before it records a batch's
        freshness samples, and a late sample would land in the next phase.
        """
        deadline = time.monotonic() + timeout_s
        while (
            self.done() < target
            or self.stats.records_done < target
            or self.first_load_pending()
            or self.first_load_unrecorded()
        ):
            if self.error is not None:
                raise BenchError(f"worker crashed: {self.error!r}") from self.error
            if time.monotonic() > deadline:
                raise BenchError(f"only {self.done()} of {target} records processed after {timeout_s:.0f} s")
            time.sleep(0.02)
        return time.monotonic()

    def first_load_unrecorded(self) -> bool:
        """The worker began a first load whose bulk pass removed the marker but is not counted yet."""
        with self.stats.lock:
            return self.first_load_begun and self.stats.first_load_passes == 0

    def first_load_pending(self) -> bool:
        """A first load's lists not built yet: its records are committed, its lists still owed."""
        first_load = self.worker.pipeline.first_load
        return first_load is not None and first_load.pending() is not None

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(60)
        self._probe.close()


def _producer(settings: Settings) -> Producer:
    return Producer({**kafka_client_config(settings), "enable.idempotence": True, "linger.ms": 5})


def _publish(producer: Producer, topic: str, events: Sequence[ProductEvent], offsets: Sequence[float] | None) -> None:
    started = time.monotonic()
    for i, event in enumerate(events):
        if offsets is not None and (wait := started + offsets[i] - time.monotonic()) > 0:
            time.sleep(wait)  # pacing: the producer is the load generator, not a test's wait
        producer.produce(topic, key=event.product_id.encode(), value=encode_event(event))
        producer.poll(0)
    if producer.flush(60) != 0:
        raise BenchError("records left undelivered")


def _private(settings: Settings) -> Settings:
    return settings.model_copy(update={**namespace_fields(f"bench-pipe-{uuid.uuid4().hex[:8]}"), "metrics_port": None})


def _cleanup(settings: Settings) -> None:
    clear_redis_namespace(settings)
    admin = AdminClient(kafka_client_config(settings))
    topics = [settings.input_topic, settings.output_topic, settings.dlq_topic]
    for future in admin.delete_topics(topics, operation_timeout=30).values():
        with contextlib.suppress(Exception):  # a topic that was never created: nothing to drop
            future.result(30)


def _generated_writes(corpus: Corpus, model_id: str, start: int, stop: int, offset: int) -> list[ProductWrite]:
    """Rows ``start:stop`` of the corpus as version-1 products ``gen-<n>`` (n counted from ``offset``)."""
    now = time.time()
    return [
        ProductWrite(
            product_id=f"{GENERATED_PREFIX}{i - offset}",
            version=1,
            content_hash=content_hash(corpus.texts[i], model_id),
            model=model_id,
            title=corpus.titles[i],
            brand=corpus.brands[i],
            category=corpus.categories[i],
            price=corpus.prices[i],
            updated_at=now,
            embedding=corpus.vectors[i],
            text=corpus.texts[i],
        )
        for i in range(start, stop)
    ]


def _generate_catalog(
    settings: Settings,
    encoder: Encoder,
    rows: Sequence[CatalogRow],
    catalog_size: int,
    *,
    encode_budget_s: float,
    seed: int,
) -> dict[str, Any]:
    """Write ``catalog_size - len(rows)`` generated products to Redis and build their lists; the timings.

    The corpus starts with the real offers' own texts (variants are made from them and synthesised
    vectors calibrated on them); only the rows after them are written: the real offers come through
    the worker.
    """
    started = time.perf_counter()
    corpus = build_corpus(
        encoder, settings.text_template, catalog_size, encode_budget_s=encode_budget_s, seed=seed, base=rows
    )
    generate_s = time.perf_counter() - started
    with contextlib.closing(make_redis_client(settings)) as client:
        return _write_and_list(settings, encoder, corpus, len(rows), catalog_size, client, generate_s)


def _write_and_list(
    settings: Settings,
    encoder: Encoder,
    corpus: Corpus,
    first: int,
    catalog_size: int,
    client: redis.Redis,
    generate_s: float,
) -> dict[str, Any]:
    store = RedisVectorStore.from_settings(settings, client)
    store.ensure_index(encoder.dim, encoder.model_id)
    started = time.perf_counter()
    for start in range(first, catalog_size, WRITE_BLOCK):
        store.upsert(_generated_writes(corpus, encoder.model_id, start, min(catalog_size, start + WRITE_BLOCK), first))
    if not store.wait_indexed(timeout_s=DRAIN_TIMEOUT_S):
        raise BenchError(f"the index did not finish indexing {catalog_size - first} products in time")
    write_s = time.perf_counter() - started
    device = resolve_device(settings.device)
    started = time.perf_counter()
    report = bulk_lists.build_all_lists(
        store, ListStore.from_settings(settings, client), SimilarityPolicy.from_settings(settings), encoder.model_id,
        device=device, terms=TermsStore(client, store.keys),
    )  # fmt: skip
    lists_wall_s = time.perf_counter() - started
    source = {kind: count for kind, count in corpus.source.items() if kind != "catalog_texts"}
    return {
        "generated": catalog_size - first,
        "generated_source": source,
        "real_texts_encoded": first,
        "generate_s": round(generate_s, 2),
        "write_s": round(write_s, 3),
        "write_products_per_s": round((catalog_size - first) / write_s, 1),
        "lists_s": round(report.seconds, 2),
        "lists_wall_s": round(lists_wall_s, 2),
        "lists_products": report.products,
        "lists_device": device,
    }


def _traffic_figures(traffic: RedisTraffic, batches: int, updates: int) -> dict[str, Any]:
    snapshot = traffic.snapshot()
    return {
        "batches": batches,
        "round_trips_per_batch": round(snapshot["round_trips"] / batches, 2) if batches else None,
        "redis_commands_per_batch": round(snapshot["commands"] / batches, 2) if batches else None,
        "searches_per_update": round(traffic.commands["FT.SEARCH"] / updates, 2),
        "redis_traffic": {
            **snapshot,
            "scope": "process-wide while saturating: the worker's batches and its polls of Redis",
        },
    }


def _freshness(samples: Sequence[float]) -> dict[str, float | int | None]:
    if not samples:
        return {"samples": 0, "p50_s": None, "p99_s": None}
    return {
        "samples": len(samples),
        "p50_s": round(percentile(samples, 50), 4),
        "p99_s": round(percentile(samples, 99), 4),
    }


def run_pipeline_bench(
    settings: Settings,
    *,
    catalog_limit: int | None = None,
    catalog_size: int | None = None,
    encode_budget_s: float = 120.0,
    backlog: int = 400,
    paced_seconds: float = 15.0,
    paced_rates: Sequence[float] = (),
    seed: int = 0,
    encoder: Encoder | None = None,
) -> dict[str, Any]:
    """A JSON-ready dict (see :func:`format_pipeline_table`). Topics, index and keys are dropped after.

    ``catalog_size``: products in all, the real offers (``catalog_limit`` of them, default all) plus
    generated ones written before the worker starts (see the module doc); default: the real offers.
    """
    if backlog < 1 or paced_seconds <= 0:
        raise ValueError("backlog must be at least 1 and paced_seconds positive")
    if not all(rate > 0 for rate in paced_rates):
        raise ValueError(f"paced rates must be positive, got {list(paced_rates)}")
    rng = random.Random(seed)
    abt, buy = sample_catalog()
    rows: list[CatalogRow] = [*read_catalog(abt, id_prefix="abt-"), *read_catalog(buy, id_prefix="buy-")]
    rng.shuffle(rows)
    rows = rows[:catalog_limit] if catalog_limit else rows
    size = len(rows) if catalog_size is None else catalog_size
    if size < len(rows):
        raise ValueError(f"catalog_size {size} is below the {len(rows)} real offers (use catalog_limit)")
    private = _private(settings)
    model = encoder or TransformerEncoder.from_settings(private)
    versions = dict.fromkeys((row.product_id for row in rows), 1)

    def updates(count: int) -> list[ProductEvent]:
        events = []
        for row in (rng.choice(rows) for _ in range(count)):
            versions[row.product_id] += 1
            edited = {**row.product, "title": perturb_text(row.product["title"], rng)}
            events.append(product_event(row.product_id, versions[row.product_id], edited))
        return events

    result: dict[str, Any] = {}
    worker: _BenchWorker | None = None
    try:
        if size > len(rows):
            result["setup"] = _generate_catalog(private, model, rows, size, encode_budget_s=encode_budget_s, seed=seed)
        worker = _BenchWorker(private, model)
        producer = _producer(private)
        done = 0

        def drain(name: str, events: Sequence[ProductEvent]) -> float:
            nonlocal done
            started = time.monotonic()
            _publish(producer, private.input_topic, events, None)
            done += len(events)
            rate = len(events) / (worker.wait_done(done) - started)
            result[name] = {"events": len(events), "products_per_s": round(rate, 2)}
            return rate

        drain("load", [product_event(row.product_id, 1, row.product) for row in rows])
        with worker.stats.lock:
            result["load"]["first_load"] = {
                "bulk_passes": worker.stats.first_load_passes,
                "lists": worker.stats.first_load_lists,
                "seconds": round(worker.stats.first_load_s, 2),
            }
        saturate_events = updates(backlog)
        batches_before = worker.stats.batches
        with count_redis_traffic() as traffic:
            sustained = drain("saturate", saturate_events)
        result["saturate"].update(_traffic_figures(traffic, worker.stats.batches - batches_before, backlog))

        def paced(rate: float) -> dict[str, Any]:
            nonlocal done
            events = updates(max(1, round(rate * paced_seconds)))
            first_sample = worker.stats.freshness_s.added
            started = time.monotonic()
            _publish(producer, private.input_topic, events, paced_schedule(len(events), rate))
            done += len(events)
            worker.wait_done(done)
            with worker.stats.lock:
                samples = worker.stats.freshness_s.since(first_sample)
            return {
                "target_per_s": round(rate, 2),
                "events": len(events),
                "achieved_per_s": round(len(events) / (time.monotonic() - started), 2),
                "freshness": _freshness(samples),
            }

        for fraction in PACED_FRACTIONS:
            result[f"paced_{round(fraction * 100)}"] = paced(sustained * fraction)
        if paced_rates:
            result["paced_at"] = [paced(rate) for rate in paced_rates]
        worker.stop()
        texts = [build_text(event.product, private.text_template) for event in saturate_events if event.product]
        model.encode(texts[:32])  # warm, as the worker's first batch was
        started = time.monotonic()
        model.encode(texts)
        encoder_rate = len(texts) / (time.monotonic() - started)
        result["encoder_only"] = {"items": len(texts), "items_per_s": round(encoder_rate, 2)}
        result["pipeline_vs_encoder"] = round(sustained / encoder_rate, 3)
    finally:
        if worker is not None:
            worker.stop()
        _cleanup(private)
    result["config"] = {
        "model": model.model_id,
        "catalog": size,
        "real_offers": len(rows),
        "backlog": backlog,
        "paced_seconds": paced_seconds,
        "top_k": private.top_k,
        "refresh": private.refresh_enabled,
        "refresh_fanout": private.refresh_fanout,
        "batch_max_items": private.batch_max_items,
        "batch_max_wait_ms": private.batch_max_wait_ms,
        "freshness": "Kafka record timestamp (produce time) to the batch's lists delivered and committed",
    }
    return result


def format_pipeline_table(result: dict[str, Any]) -> str:
    config = result["config"]
    lines = [
        f"worker through Kafka + Redis, {config['catalog']} products, top_k {config['top_k']}, "
        f"refresh {'on' if config['refresh'] else 'off'} (fan-out {config['refresh_fanout']})",
        f"load (creates):          {result['load']['products_per_s']:>8} products/s"
        + (
            f" (first load: {first['lists']} lists built in bulk in {first['seconds']} s)"
            if (first := result["load"].get("first_load", {})).get("bulk_passes")
            else ""
        ),
        f"sustained (updates):     {result['saturate']['products_per_s']:>8} products/s",
        f"  Redis while saturating: {result['saturate']['round_trips_per_batch']} round trips and "
        f"{result['saturate']['redis_commands_per_batch']} commands per batch, "
        f"{result['saturate']['searches_per_update']} FT.SEARCH per update (worker polls included)",
    ]
    if "setup" in result:
        setup = result["setup"]
        source = setup["generated_source"]
        lines[1:1] = [
            f"setup: {setup['generated']} generated products ({source['reencoded_variants']} re-encoded "
            f"variants, {source['synthesised']} synthesised) beside {config['real_offers']} real offers: "
            f"generate {setup['generate_s']} s, write {setup['write_s']} s, lists {setup['lists_s']} s "
            f"({setup['lists_device']})"
        ]
    paced_rows = [(f"paced {round(f * 100)}%", result[f"paced_{round(f * 100)}"]) for f in PACED_FRACTIONS]
    paced_rows += [("paced at", row) for row in result.get("paced_at", [])]
    for name, row in paced_rows:
        fresh = row["freshness"]
        lines.append(
            f"{name} ({row['target_per_s']}/s, achieved {row['achieved_per_s']}/s): freshness p50 "
            f"{fresh['p50_s']} s, p99 {fresh['p99_s']} s over {fresh['samples']} lists"
        )
    lines.append(
        f"encoder only: {result['encoder_only']['items_per_s']} items/s; "
        f"pipeline / encoder: {result['pipeline_vs_encoder']}x"
    )
    return "\n".join(lines)
