"""``simstream soak``: the real worker process under half load for minutes; does its memory stay flat?

On a private stack (as ``simstream chaos``), one ``python -m simstream run`` subprocess gets:
1. load: the Abt-Buy catalog as creates, drained;
2. sustained rate: a backlog of updates (a title word dropped, two swapped: re-encode + refresh) drained
   as fast as the worker can, as ``bench pipeline`` measures it;
3. warm-up, then the soak: updates paced at half that rate for ``--minutes``. The worker's resident set
   (VmRSS of its /proc status) is compared in the same state at both ends, idle once what was sent is
   processed: after the warm-up and at the end (the growth). While the load runs it is sampled every
   ``sample_interval_s`` too (the samples and their maximum: what a busy worker holds on top).

Freshness is read from outside the worker: an observer consumes the input and output topics and takes,
for each update of the soak, the output list record for the same (product, version) minus the input
record's timestamp (both Kafka CreateTime: produce time of the event, produce time of its list).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from simstream.bench_pipeline import _cleanup, _freshness, _producer, _publish, paced_schedule
from simstream.bench_redis import perturb_text
from simstream.chaos import WorkerProcess, abt_buy_products, chaos_stack, wait_until
from simstream.consumers.group_lag import group_lag
from simstream.core.errors import SimstreamError
from simstream.core.namespace import namespace_fields
from simstream.producers.publish import product_event
from simstream.producers.topics import ensure_topics
from simstream.schemas.events import ProductEvent
from simstream.schemas.settings import Settings, kafka_client_config

Progress = Callable[[str], None]
# Idle RSS is read this long after the worker drained: longer than its heap-trim interval.
IDLE_SETTLE_S = 2.0
Key = tuple[str, int]  # (product_id, version)


@dataclass(frozen=True, slots=True)
class SoakOptions:
    minutes: float = 30.0
    products: int = 2173  # the first N Abt-Buy offers (all of them by default)
    warmup_s: float = 60.0  # paced load before the first RSS figure (caches, allocator pools fill)
    backlog: int = 300  # updates drained to measure the sustained rate
    load_fraction: float = 0.5
    sample_interval_s: float = 10.0
    seed: int = 0
    timeout_s: float = 900.0  # bound of every wait for the worker


def rss_kib(pid: int) -> int:
    """The resident set of process ``pid`` in KiB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise SimstreamError(f"no VmRSS for process {pid}")


class TopicObserver:
    """Reads the input and output topics in a thread: when each (product, version) was produced, and
    when the first list computed from it was. Keeps two ints per update: the soak's own bookkeeping."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.produced_ms: dict[Key, int] = {}
        self.listed_ms: dict[Key, int] = {}
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._consumer = Consumer(
            {
                **kafka_client_config(settings),
                "group.id": f"simstream-soak-observer-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        assigned = []
        for topic in (settings.input_topic, settings.output_topic):
            metadata = self._consumer.list_topics(topic, timeout=30).topics[topic]
            assigned += [TopicPartition(topic, number, OFFSET_BEGINNING) for number in metadata.partitions]
        self._consumer.assign(assigned)
        self._thread = threading.Thread(target=self._run, name="soak-observer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for message in self._consumer.consume(1000, timeout=0.5):
                    value = message.value()
                    if message.error() is None and isinstance(value, bytes):
                        self._note(message.topic(), value, message.timestamp()[1])
        except BaseException as exc:  # reported by stop()
            self.error = exc
        finally:
            self._consumer.close()

    def _note(self, topic: str | None, value: bytes, timestamp_ms: int) -> None:
        record = orjson.loads(value)
        if topic == self._settings.input_topic:
            self.produced_ms.setdefault((record["product_id"], record["version"]), timestamp_ms)
        else:
            key = (record["product_id"], record["source_version"])
            self.listed_ms[key] = min(self.listed_ms.get(key, timestamp_ms), timestamp_ms)

    def freshness_s(self, keys: list[Key]) -> list[float]:
        return [
            max(0.0, (self.listed_ms[key] - self.produced_ms[key]) / 1000)
            for key in keys
            if key in self.listed_ms and key in self.produced_ms
        ]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        if self.error is not None:
            raise SimstreamError(f"the topic observer failed: {self.error!r}") from self.error


class _Updates:
    """Catalog edits: each a new version of a random product with a perturbed title."""

    def __init__(self, products: list[tuple[str, dict[str, Any]]], seed: int) -> None:
        self._products = products
        self._rng = random.Random(seed)
        self.versions = {pid: 1 for pid, _ in products}

    def next(self, count: int) -> list[ProductEvent]:
        events = []
        for pid, product in (self._rng.choice(self._products) for _ in range(count)):
            self.versions[pid] += 1
            edited = {**product, "title": perturb_text(product["title"], self._rng)}
            events.append(product_event(pid, self.versions[pid], edited))
        return events


def run_soak(settings: Settings, options: SoakOptions, log_dir: Path, progress: Progress) -> dict[str, Any]:
    """A JSON-ready dict of the soak's figures; topics, index and keys are dropped after."""
    if options.minutes <= 0 or options.backlog < 1 or not 0 < options.load_fraction <= 1:
        raise ValueError("minutes must be positive, backlog at least 1, load_fraction in (0, 1]")
    private = settings.model_copy(update={**namespace_fields(f"soak-{uuid.uuid4().hex[:8]}"), "metrics_port": None})
    products = abt_buy_products(options.products)
    updates = _Updates(products, options.seed)
    ensure_topics(private)
    observer = TopicObserver(private)
    worker = WorkerProcess(private, log_dir / "soak-worker.log", "soak")
    producer = _producer(private)
    published = 0

    def require_alive() -> None:
        if not worker.alive():
            tail = (log_dir / "soak-worker.log").read_text(errors="replace").splitlines()[-5:]
            raise SimstreamError(f"the worker exited with {worker.exit_code()}; its log ends: {' | '.join(tail)}")

    def drained() -> bool:
        require_alive()
        return group_lag(private) == 0

    def idle_rss() -> int:
        """RSS of the drained, idle worker: after its last batch and the heap trim that follows it."""
        wait_until(drained, options.timeout_s, "the updates sent so far to be processed", interval_s=0.2)
        time.sleep(IDLE_SETTLE_S)  # measurement pause: the worker's idle poll trims within a second
        return rss_kib(worker.pid)

    def send(events: list[ProductEvent], rate: float | None = None) -> None:
        nonlocal published
        _publish(producer, private.input_topic, events, paced_schedule(len(events), rate) if rate else None)
        published += len(events)

    try:
        worker.wait_loaded(options.timeout_s)
        progress(f"soak: loading {len(products)} products")
        send([product_event(pid, 1, product) for pid, product in products])
        wait_until(drained, options.timeout_s, "the catalog to be processed", interval_s=0.2)
        started = time.monotonic()
        send(updates.next(options.backlog))
        wait_until(drained, options.timeout_s, "the backlog to be processed", interval_s=0.2)
        sustained = options.backlog / (time.monotonic() - started)
        rate = sustained * options.load_fraction
        progress(f"soak: sustained {sustained:.1f} updates/s; {options.minutes} min at {rate:.1f}/s after warm-up")

        chunk = max(1, round(rate * options.sample_interval_s))
        warm_until = time.monotonic() + options.warmup_s
        while time.monotonic() < warm_until:
            send(updates.next(chunk), rate)
        rss_warm = idle_rss()
        soak_keys: list[Key] = []
        samples: list[tuple[float, int]] = [(0.0, rss_warm)]
        soak_started = time.monotonic()
        soak_end = soak_started + options.minutes * 60
        while time.monotonic() < soak_end:
            events = updates.next(chunk)
            send(events, rate)
            soak_keys += [(e.product_id, e.version) for e in events]
            require_alive()
            samples.append((round(time.monotonic() - soak_started, 1), rss_kib(worker.pid)))
        sent_seconds = time.monotonic() - soak_started
        rss_end = idle_rss()
        samples.append((round(time.monotonic() - soak_started, 1), rss_end))
        # A version superseded inside one batch gets no list of its own; the latest of each product does.
        latest = list(dict(soak_keys).items())
        wait_until(lambda: all(key in observer.listed_ms for key in latest), 60, "the last lists to be observed")
        exit_code = worker.terminate()
        observer.stop()
    finally:
        if worker.alive():
            worker.kill()
        _cleanup(private)
    return {
        "minutes": options.minutes,
        "catalog": len(products),
        "sustained_per_s": round(sustained, 2),
        "target_per_s": round(rate, 2),
        "achieved_per_s": round(len(soak_keys) / sent_seconds, 2),
        "records_processed": published,
        "soak_updates": len(soak_keys),
        "rss_warm_mib": round(rss_warm / 1024, 1),
        "rss_end_mib": round(rss_end / 1024, 1),
        "rss_max_mib": round(max(kib for _, kib in samples) / 1024, 1),
        "rss_growth_pct": round(100 * (rss_end - rss_warm) / rss_warm, 2),
        "rss_samples_mib": [[t, round(kib / 1024, 1)] for t, kib in samples],
        "freshness": _freshness(observer.freshness_s(soak_keys)),
        "worker_exit_code": exit_code,
        "config": {
            "warmup_s": options.warmup_s,
            "load_fraction": options.load_fraction,
            "top_k": private.top_k,
            "refresh": private.refresh_enabled,
            "freshness": "input record timestamp to the first output list of that version (Kafka CreateTime)",
            "rss": "VmRSS of the `python -m simstream run` process",
        },
    }


def format_soak(result: dict[str, Any]) -> str:
    fresh = result["freshness"]
    return "\n".join(
        [
            f"soak: {result['minutes']} min at {result['target_per_s']}/s (half of {result['sustained_per_s']}/s "
            f"sustained), {result['catalog']} products, {result['records_processed']} records processed",
            f"worker RSS: {result['rss_warm_mib']} MiB after warm-up, {result['rss_end_mib']} MiB at the end "
            f"({result['rss_growth_pct']:+.2f} %), max {result['rss_max_mib']} MiB",
            f"freshness: p50 {fresh['p50_s']} s, p99 {fresh['p99_s']} s over {fresh['samples']} updates",
        ]
    )


def cmd_soak(args: argparse.Namespace, settings: Settings) -> int:
    options = SoakOptions(
        minutes=args.minutes, products=args.products, warmup_s=args.warmup, backlog=args.backlog, seed=args.seed
    )

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        with chaos_stack(progress) as private_stack, tempfile.TemporaryDirectory(prefix="simstream-soak-") as logs:
            kafka, redis_url = private_stack.endpoints()
            endpoints = settings.model_copy(update={"kafka_bootstrap": kafka, "redis_url": redis_url})
            result = run_soak(endpoints, options, Path(logs), progress)
    except SimstreamError as exc:
        print(f"simstream soak: {exc}", file=sys.stderr)
        return 2
    print(orjson.dumps(result).decode() if args.json else format_soak(result))
    return 0
