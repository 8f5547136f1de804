"""``simstream bench pipeline``: the worker through the real Kafka and Redis.

The real worker runs in a thread of this process on private topics, group, index and key prefix.
1. load: the Abt-Buy catalog (creates) is published as a backlog; products/s to drain it.
2. saturate: a backlog of updates (a title word dropped and two swapped: re-encode + refresh);
   products/s to drain it is the sustained rate.
3. paced: updates published at 50% and 90% of that rate; freshness (Kafka record timestamp, set when
   produced, to the batch's lists being delivered and committed) p50/p99 from the worker's samples.
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

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from simstream.bench_redis import percentile, perturb_text
from simstream.consumers.stats import WorkerStats
from simstream.consumers.worker import Worker, build_worker
from simstream.core.encoder import Encoder, TransformerEncoder
from simstream.core.errors import SimstreamError
from simstream.core.namespace import clear_redis_namespace, namespace_fields
from simstream.core.text import build_text
from simstream.demo import sample_catalog
from simstream.producers.catalog import CatalogRow, read_catalog
from simstream.producers.publish import product_event
from simstream.schemas.codec import encode_event
from simstream.schemas.events import ProductEvent
from simstream.schemas.settings import Settings, kafka_client_config

PACED_FRACTIONS = (0.5, 0.9)
DRAIN_TIMEOUT_S = 600.0


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
        while self.done() < target or self.stats.records_done < target:
            if self.error is not None:
                raise BenchError(f"worker crashed: {self.error!r}") from self.error
            if time.monotonic() > deadline:
                raise BenchError(f"only {self.done()} of {target} records processed after {timeout_s:.0f} s")
            time.sleep(0.02)
        return time.monotonic()

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
    backlog: int = 400,
    paced_seconds: float = 15.0,
    seed: int = 0,
    encoder: Encoder | None = None,
) -> dict[str, Any]:
    """A JSON-ready dict (see :func:`format_pipeline_table`). Topics, index and keys are dropped after."""
    if backlog < 1 or paced_seconds <= 0:
        raise ValueError("backlog must be at least 1 and paced_seconds positive")
    private = _private(settings)
    model = encoder or TransformerEncoder.from_settings(private)
    rng = random.Random(seed)
    abt, buy = sample_catalog()
    rows: list[CatalogRow] = [*read_catalog(abt, id_prefix="abt-"), *read_catalog(buy, id_prefix="buy-")]
    rng.shuffle(rows)
    rows = rows[:catalog_limit] if catalog_limit else rows
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
        saturate_events = updates(backlog)
        sustained = drain("saturate", saturate_events)
        for fraction in PACED_FRACTIONS:
            rate = sustained * fraction
            events = updates(max(1, round(rate * paced_seconds)))
            first_sample = worker.stats.freshness_s.added
            started = time.monotonic()
            _publish(producer, private.input_topic, events, paced_schedule(len(events), rate))
            done += len(events)
            worker.wait_done(done)
            with worker.stats.lock:
                samples = worker.stats.freshness_s.since(first_sample)
            result[f"paced_{round(fraction * 100)}"] = {
                "target_per_s": round(rate, 2),
                "events": len(events),
                "achieved_per_s": round(len(events) / (time.monotonic() - started), 2),
                "freshness": _freshness(samples),
            }
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
        "catalog": len(rows),
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
        f"load (creates):          {result['load']['products_per_s']:>8} products/s",
        f"sustained (updates):     {result['saturate']['products_per_s']:>8} products/s",
    ]
    for fraction in PACED_FRACTIONS:
        row = result[f"paced_{round(fraction * 100)}"]
        fresh = row["freshness"]
        lines.append(
            f"paced {round(fraction * 100)}% ({row['target_per_s']}/s): freshness p50 {fresh['p50_s']} s, "
            f"p99 {fresh['p99_s']} s over {fresh['samples']} lists"
        )
    lines.append(
        f"encoder only: {result['encoder_only']['items_per_s']} items/s; "
        f"pipeline / encoder: {result['pipeline_vs_encoder']}x"
    )
    return "\n".join(lines)
