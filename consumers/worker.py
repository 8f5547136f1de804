"""`simstream run`: the streaming worker in a consumer group.

poll -> decode (bad records become dead letters) -> micro-batch -> pipeline (Redis) -> checkpoint
(consumers/checkpoint.py: emit lists -> flush the producer -> make lists current -> commit offsets).
Offsets are committed only after the Redis writes and the producer's deliveries of their batch
succeeded; replays are harmless because every write is version-fenced. While one batch is applied,
what was polled after it is encoded ahead on one background thread (consumers/prefetch.py); the
worker also polls between the round trips of a batch's list work (without waiting), so that at low
load too the records that arrive meanwhile are encoded before the batch ends. A partition revoked by
such a poll while its records are in the batch being applied makes that batch start again without
them, before anything of it is emitted or committed: their new owner replays them.

Exactly-once output (``Settings.exactly_once``) is the same path with a transaction around each batch's
checkpoint: begin -> dead letters, lists, tombstones -> flush -> make lists current in Redis -> the
batch's offsets into the transaction -> commit. Redis and Kafka cannot commit atomically, so Redis goes
first and the replay rule of :meth:`Pipeline.process` covers a transaction that then aborts (or a crash
before its commit): a replayed event is always relisted, and a batch with a replay emits every list it
recomputes, so the re-run transaction carries everything the lost one did. Retryable errors abort the
transaction and retry the batch; a fatal producer error (fenced) ends the worker with a non-zero exit.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from simstream.consumers.caught_up import caught_up
from simstream.consumers.checkpoint import BatchOutput, Checkpoint, ConsumerOffsets
from simstream.consumers.heap import HeapTrimmer
from simstream.consumers.http import start_server
from simstream.consumers.metrics import BatchObservation, LagSampler, WorkerMetrics
from simstream.consumers.prefetch import Prefetcher
from simstream.consumers.redis_position import RedisPosition
from simstream.consumers.stats import WorkerStats
from simstream.core.applied_offsets import AppliedOffsets, Partition
from simstream.core.batcher import BatchLimits, MicroBatcher
from simstream.core.encoder import Encoder
from simstream.core.errors import (
    ConfigError,
    IndexMismatchError,
    ModelLoadError,
    SimstreamError,
    StoreAuthError,
    StoreUnavailableError,
)
from simstream.core.frozen_heap import frozen_heap
from simstream.core.generations import GenerationsMoved
from simstream.core.list_store import StoredList
from simstream.core.log_limit import kafka_logger
from simstream.core.pipeline import BatchResult, Inbound, Pipeline, Prefetched
from simstream.core.pipeline_factory import EncoderFactory, PipelineFactory
from simstream.core.redis_keys import RedisKeys
from simstream.producers.sink import DeliveryError, FatalKafkaError, KafkaSink
from simstream.producers.topics import AUTHORIZATION_ERRORS, KafkaAccessError
from simstream.schemas.codec import DecodeFailure, clip_detail, decode_event
from simstream.schemas.settings import Settings, kafka_client_config

log = logging.getLogger("simstream.worker")

# Errors that a later attempt of the same batch can get past; anything else is a bug or fatal.
RETRYABLE = (StoreUnavailableError, DeliveryError, KafkaException)
# Errors that no record causes and no retry fixes: the worker ends (a supervisor or an operator acts).
FATAL = (FatalKafkaError, StoreAuthError, IndexMismatchError, ModelLoadError, ConfigError)
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 10.0
# How often an idle worker looks for a pending first load (one GET).
FIRST_LOAD_CHECK_S = 1.0


class PartitionsRevoked(Exception):
    """A poll between round trips revoked partitions whose records the batch being applied holds."""


@dataclass(frozen=True, slots=True)
class Pending:
    """One consumed record waiting in the batcher: a decoded event or the reason it failed."""

    message: Message
    outcome: Inbound | DecodeFailure
    poll: int = 0  # the consume call that read it (see RedisPosition.read_before_rewind)

    @property
    def partition(self) -> Partition:
        return (self.message.topic() or "", self.message.partition() or 0)


def where(message: Message) -> str:
    return f"{message.topic()}[{message.partition()}]@{message.offset()}"


def consumer_config(settings: Settings) -> dict[str, Any]:
    return {
        **kafka_client_config(settings),
        "logger": kafka_logger(),
        "group.id": settings.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "isolation.level": "read_committed",
    }


class Worker:
    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        sink: KafkaSink,
        *,
        consumer: Consumer | None = None,
        stats: WorkerStats | None = None,
        metrics: WorkerMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        position: RedisPosition | None = None,
        factory: PipelineFactory | None = None,
    ) -> None:
        self._settings = settings
        self._factory = factory  # rebuilds the pipeline when `simstream model` changes the generations
        self._position = position
        self._pipeline = pipeline
        self._sink = sink
        self._consumer = consumer or Consumer(consumer_config(settings))
        self.stats = stats or WorkerStats()
        self.metrics = metrics or WorkerMetrics()
        self._lag = LagSampler(self.metrics, settings.metrics_lag_interval_s)
        self._batcher: MicroBatcher[Pending] = MicroBatcher(BatchLimits.from_settings(settings), clock)
        self._stopping = False
        self._backing_off = False  # partitions are paused while a failed batch waits for its retry
        self._ready: list[list[Pending]] = []  # full batches waiting to be processed by the main loop
        self._polls = 0
        self._last_poll_at = time.monotonic()
        self._next_position_check = 0.0
        self._next_first_load_check = 0.0
        self._first_load_seen: int | None = None  # the first-load counter at the previous idle look
        self._heap = HeapTrimmer()  # freed batch memory back to the OS: RSS stays flat
        self._checkpoint = Checkpoint(sink, ConsumerOffsets(self._consumer), pipeline, position)
        self._prefetcher = Prefetcher(pipeline, settings.batch_max_items)
        self._queued = 0  # records polled and batched but not yet processed, outside self._ready
        self._draining = False  # the final batches at shutdown: no more polls between round trips
        self._deferred: list[Message] = []  # consumer errors met between round trips: the next poll's
        self._inflight: list[Pending] | None = None  # the batch being applied
        self._inflight_revoked = False
        self._revoked_meanwhile = False  # a revoke since the current poll's batches were formed

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    def stop(self, *_: object) -> None:
        self._stopping = True

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: stop polling, drain, commit, exit", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self, stop_when: Callable[[], bool] | None = None) -> None:
        self._consumer.subscribe(
            [self._settings.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        try:
            with frozen_heap():  # the model and clients built so far live as long as the worker
                while not self._stopping and not (stop_when and stop_when()):
                    self._poll_once()
                self._draining = True
                self._process_all([*self._ready, *self._batcher.flush()])
        finally:
            self._prefetcher.close()
            self._consumer.close()

    def _poll_once(self) -> None:
        wait = self._batcher.time_until_due()
        timeout = 0.5 if wait is None else max(0.0, min(wait, 0.5))
        received = self._receive(timeout)
        messages, self._deferred = [*self._deferred, *received], []
        self._revoked_meanwhile = False  # a revoke during the poll filtered what was batched already
        since_last_poll = self._count_poll()
        self._check_position_now()
        self._lag.maybe_sample(self._consumer)
        self._sink.serve()
        ready = self._accept(messages, since_last_poll)
        if len(received) < self._settings.poll_max_records:  # a full poll: more are waiting to fill the batch
            ready.extend(self._batcher.due())
        self._process_all(ready)
        if not messages and not ready and not len(self._batcher):
            self._finish_first_load()
        self._heap.maybe_trim()

    def _count_poll(self) -> float:
        """Number the poll just made (see RedisPosition.read_before_rewind); the seconds since the last."""
        polled_at = time.monotonic()
        since_last_poll, self._last_poll_at = polled_at - self._last_poll_at, polled_at
        self._polls += 1
        return since_last_poll

    def _accept(self, messages: Sequence[Message], since_last_poll: float) -> list[list[Pending]]:
        """One poll's records decoded into the batcher (and queued to be encoded ahead): the batches
        ready to process, those closed earlier (between round trips) first."""
        ready, self._ready = self._ready, []
        polled: list[Inbound] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() in AUTHORIZATION_ERRORS:
                    raise KafkaAccessError(f"Kafka at {self._settings.kafka_bootstrap}: not authorised: {error.str()}")
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", error)
                    if error.fatal():
                        raise KafkaException(error)
                continue
            pending = self._decode(message)
            tokens = 0
            if isinstance(pending.outcome, Inbound):
                tokens = pending.outcome.tokens
                polled.append(pending.outcome)
            ready.extend(self._batcher.add(pending, tokens, min(since_last_poll, record_age(message))))
        self._prefetcher.add(polled)
        return ready

    def _poll_between(self) -> None:
        """Between the round trips of a batch's list work: what the consumer holds now (no wait) into the
        batcher, to be encoded ahead. Only while less than a batch is waiting, and never at shutdown."""
        if self._draining or self._stopping or self._backing_off:
            return
        waiting = self._queued + len(self._batcher) + sum(map(len, self._ready))
        if waiting < self._settings.batch_max_items:
            messages = self._consumer.consume(num_messages=self._settings.poll_max_records, timeout=0)
            if messages:
                # Errors are handled by the next regular poll, where they stop or warn as always.
                self._deferred.extend(m for m in messages if m.error() is not None)
                self._ready = self._accept([m for m in messages if m.error() is None], self._count_poll())
        self._prefetcher.pump()

    def _receive(self, timeout: float) -> list[Message]:
        """What the consumer holds, waiting at most ``timeout`` for the first record and not at all for
        the rest: ``consume(n, timeout)`` alone waits for n records or the whole timeout, which put up
        to half a second between a record's arrival and its batch at low load."""
        first = self._consumer.poll(timeout)
        if first is None:
            return []
        more = self._settings.poll_max_records - 1
        return [first, *self._consumer.consume(num_messages=more, timeout=0)] if more else [first]

    def _process_all(self, batches: list[list[Pending]]) -> None:
        """Process ``batches`` in order; what was polled after each is encoded ahead meanwhile."""
        for index, batch in enumerate(batches):
            if self._revoked_meanwhile:  # by a poll between round trips: the new owner replays those
                batch = self._owned(batch)
            prefetched = self._prefetcher.take([p.outcome for p in batch if isinstance(p.outcome, Inbound)])
            if prefetched is not None:
                self.stats.prefetched_batches += 1
            self._queued = sum(map(len, batches[index + 1 :]))
            self._process(batch, prefetched)
            self._heap.note_work()
        self._queued = 0

    def _finish_first_load(self) -> None:
        """Idle with nothing batched: build a pending first load's lists (core/first_load)."""
        now = time.monotonic()
        if now < self._next_first_load_check:
            return
        self._next_first_load_check = now + FIRST_LOAD_CHECK_S
        started = time.perf_counter()
        try:
            self._follow_generations()  # a promotion's bulk pass must build from the new live model
            first_load = self._pipeline.first_load
            if first_load is None:
                return
            seen = first_load.pending()
            # Build only once no batch anywhere wrote since the last look (or only this worker did) and
            # this worker read everything it was given: a pass that another worker's batches outdate
            # would be repeated.
            quiet = seen is not None and seen in (self._first_load_seen, first_load.last_written)
            self._first_load_seen = seen
            if seen is None or not quiet or not caught_up(self._consumer):
                return
            report = self._pipeline.finish_first_load(seen, self._emit_first_load)
        except FATAL:
            raise
        except RETRYABLE as exc:  # the marker stays: the next idle poll builds the lists again
            self._checkpoint.abort()
            log.warning("first load: building the lists failed, retrying when idle: %s", exc)
            return
        self._heap.note_work()
        seconds = time.perf_counter() - started
        with self.stats.lock:
            self.stats.first_load_passes += 1
            self.stats.first_load_lists += report.emitted
            self.stats.first_load_s += seconds
            self.stats.lists_emitted += report.emitted
        self.metrics.count_first_load_lists(report.emitted)
        log.info(
            "bulk pass (first load or term switch): %d lists built, %d emitted, %d unchanged in %.2fs "
            "(score %.2fs, rank %.2fs, write %.2fs, terms %s)%s",
            report.products, report.emitted, report.unchanged, seconds, report.score_s, report.rank_s,
            report.write_s, report.terms, "" if report.finished else "; batches wrote meanwhile, another pass follows",
        )  # fmt: skip

    def _emit_first_load(self, lists: Sequence[StoredList]) -> None:
        # Delivered (and in exactly-once mode committed) before build_all_lists makes them current.
        self._checkpoint.deliver_lists(lists)
        with self.stats.lock:
            for record in lists:
                self.stats.emitted_ids.add(record.product_id)

    def _check_position_now(self) -> None:
        # Batches check their own partitions; this catches a Redis that lost writes of partitions
        # that have no new records (an idle stream after a Redis restart).
        if self._position is None or time.monotonic() < self._next_position_check:
            return
        self._next_position_check = time.monotonic() + self._settings.redis_position_check_s
        self._position.polls = self._polls
        owned = [(tp.topic, tp.partition) for tp in self._consumer.assignment()]
        try:
            self._position.rewind_if_behind(self._consumer, owned)
        except StoreUnavailableError as exc:
            log.warning("cannot compare the input position with Redis now: %s", exc)

    def _decode(self, message: Message) -> Pending:
        self.stats.records_in += 1
        self.metrics.count_record_in()
        decoded = decode_event(message.key(), message.value(), max_bytes=self._settings.max_event_bytes)
        if isinstance(decoded, DecodeFailure):
            return self._failed(message, decoded)
        _, timestamp_ms = message.timestamp()
        event_time = timestamp_ms / 1000 if timestamp_ms and timestamp_ms > 0 else time.time()
        try:
            inbound = self._pipeline.prepare(decoded, event_time)
        except Exception as exc:  # a bug or a tokenizer failure on odd text: this record alone pays for it
            return self._failed(message, DecodeFailure("processing_error", failure_detail(exc)))
        if inbound.text is not None and not inbound.text.strip():
            return self._failed(message, DecodeFailure("empty_text", "the product's text is empty once cleaned"))
        return Pending(message, inbound, self._polls)

    def _failed(self, message: Message, failure: DecodeFailure) -> Pending:
        log.warning("%s dead letter: %s: %s", where(message), failure.reason, failure.detail)
        return Pending(message, failure, self._polls)

    def _process(self, batch: list[Pending], prefetched: Prefetched | None = None) -> None:
        attempt = 0
        while batch:
            try:
                self._process_once(batch, prefetched)
                if attempt:
                    self._consumer.resume(self._consumer.assignment())
                return
            except FATAL:
                raise
            except PartitionsRevoked:
                # Nothing of the batch was emitted or committed; its writes replay as no-ops (relisted).
                self._checkpoint.abort()
                batch = self._owned(batch)
                log.info("partitions revoked during the batch: applying the %d records still owned", len(batch))
                continue
            except GenerationsMoved as exc:
                # Written for generations that changed meanwhile: again, for the new ones, at once. The
                # live writes replay as no-ops; the offsets were not committed.
                self._checkpoint.abort()
                log.info("%s: processing the batch of %d again", exc, len(batch))
                self._follow_generations()
                continue
            except RETRYABLE as exc:
                self._checkpoint.abort()
                attempt += 1
                self.stats.retries += 1
                self.metrics.count_retry()
                delay = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2**attempt) * random.uniform(0.5, 1.0)
                log.warning("batch of %d failed (attempt %d), retrying in %.1fs: %s", len(batch), attempt, delay, exc)
                self._backing_off = True
                self._consumer.pause(self._consumer.assignment())
                try:
                    self._wait(delay)
                finally:
                    self._backing_off = False
                if self._stopping and attempt >= 3:
                    raise SimstreamError(f"giving up on shutdown after {attempt} attempts: {exc}") from exc
                # A rebalance while waiting may have taken partitions: their new owner redoes those records.
                batch = self._owned(batch)
            except Exception as exc:  # not transient, not fatal: some record(s) of this batch cause it
                self._checkpoint.abort()
                if attempt:
                    self._consumer.resume(self._consumer.assignment())
                self._isolate(batch, exc, prefetched)
                return
        if attempt:
            self._consumer.resume(self._consumer.assignment())

    def _isolate(self, batch: list[Pending], exc: Exception, prefetched: Prefetched | None = None) -> None:
        """Split a failing batch until the records that cause the failure stand alone, dead-letter those
        with reason ``processing_error`` and process the rest. Halves keep each partition's offset order,
        so a half's commit never moves past a record of the other half."""
        if len(batch) == 1:
            (pending,) = batch
            self.stats.processing_errors += 1
            log.error("%s fails on its own, dead letter: %s", where(pending.message), failure_detail(exc))
            failure = DecodeFailure("processing_error", failure_detail(exc))
            self._process([Pending(pending.message, failure, pending.poll)])
            return
        log.warning("batch of %d failed (%s): splitting it to find the record(s) that cause it", len(batch), exc)
        ordered = sorted(
            batch, key=lambda p: (p.message.topic() or "", p.message.partition() or 0, p.message.offset() or 0)
        )
        middle = len(ordered) // 2
        # The halves share the batch's prefetched vectors; its encoder time is accounted once.
        self._process(ordered[:middle], prefetched)
        rest = None if prefetched is None else replace(prefetched, encode_seconds=0.0)
        self._process(self._owned(ordered[middle:]), rest)

    def _owned(self, batch: list[Pending]) -> list[Pending]:
        owned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        return [p for p in batch if (p.message.topic(), p.message.partition()) in owned]

    def _wait(self, seconds: float) -> None:
        # Keep serving the consumer (rebalances, liveness) while partitions are paused: never spin.
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            message = self._consumer.poll(min(left, 0.5))
            if message is not None and message.error() is None:
                # Paused partitions return nothing; should one slip through, rewind so it is read again.
                self._consumer.seek(
                    TopicPartition(message.topic() or "", message.partition() or 0, message.offset() or 0)
                )

    def _in_step_with_redis(self, batch: list[Pending]) -> list[Pending]:
        """The batch without the records of partitions that were sought back to where Redis is."""
        position = self._position
        if position is None:
            return batch
        position.polls = self._polls
        position.rewind_if_behind(self._consumer, (p.partition for p in batch))
        return [p for p in batch if not position.read_before_rewind(p.partition, p.poll)]

    def _follow_generations(self) -> None:
        """Rebuild the pipeline when `simstream model` changed the model generations (core/generations):
        one GET per batch; the encoders of known models stay loaded, so a swap costs no model load."""
        factory, watch = self._factory, self._pipeline.generations
        if factory is None or watch is None or factory.current() == watch.expected:
            return
        self._pipeline = factory.build()
        self._checkpoint.use_lists(self._pipeline)
        self._prefetcher.use(self._pipeline)
        self._first_load_seen = None
        self.stats.generation_switches += 1
        rebuilt = self._pipeline.generations
        log.info("model generations now %s: pipeline rebuilt", rebuilt.expected if rebuilt else None)

    def _process_once(self, batch: list[Pending], prefetched: Prefetched | None) -> None:
        batch = self._in_step_with_redis(batch)
        if not batch:
            return
        self._follow_generations()
        inbound = [p.outcome for p in batch if not isinstance(p.outcome, DecodeFailure)]
        started = time.perf_counter()
        self._inflight, self._inflight_revoked = batch, False
        try:
            result = self._pipeline.process(inbound, prefetched, between=self._poll_between) if inbound else None
        finally:
            self._inflight = None
        if self._inflight_revoked:
            raise PartitionsRevoked()
        processed = time.perf_counter()
        dead_letters = [(p.message, p.outcome) for p in batch if isinstance(p.outcome, DecodeFailure)]
        committed = self._checkpoint.commit(BatchOutput(dead_letters, result, next_offsets(batch)))
        # Redis time: the pipeline outside the encoder (the prefetch ran before it), plus making the
        # delivered lists current.
        encode_inline = result.encode_seconds - result.encode_ahead_seconds if result is not None else 0.0
        redis_seconds = processed - started - encode_inline + committed.lists_seconds
        self._account(batch, result, time.perf_counter() - started)
        self._observe(batch, result, redis_seconds, committed.delivered_at)

    def _account(self, batch: list[Pending], result: BatchResult | None, seconds: float) -> None:
        stats = self.stats
        stats.batches += 1
        stats.dead_letters += sum(isinstance(p.outcome, DecodeFailure) for p in batch)
        if result is None:
            stats.records_done += len(batch)
            return
        now = time.time()
        with stats.lock:
            stats.records_done += len(batch)
            stats.stale += result.stale
            stats.encoded += result.encoded
            stats.metadata_only += result.metadata_only
            stats.deleted += result.deleted
            stats.encode_s += result.encode_seconds
            stats.lists_emitted += len(result.lists)
            for record in result.lists:
                stats.emitted_ids.add(record.product_id)
            stats.freshness_s.extend(now - t for t in result.event_times.values())
            stats.shadow_encoded += result.shadow_encoded
        shadow = f" (+{result.shadow_encoded} by the shadow model)" if result.shadow_encoded else ""
        log.info(
            "batch: %d records, %d lists, %d encoded%s, %d metadata-only, %d deleted, %d stale in %.2fs",
            len(batch),
            len(result.lists),
            result.encoded,
            shadow,
            result.metadata_only,
            result.deleted,
            result.stale,
            seconds,
        )

    def _observe(self, batch: list[Pending], result: BatchResult | None, redis_s: float, delivered_at: float) -> None:
        self.metrics.observe_batch(
            BatchObservation(
                records=len(batch),
                tokens=sum(p.outcome.tokens for p in batch if isinstance(p.outcome, Inbound)),
                dead_letter_reasons=[p.outcome.reason for p in batch if isinstance(p.outcome, DecodeFailure)],
                result=result,
                redis_seconds=redis_s,
                delivered_at=delivered_at,
            )
        )

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # A partition keeps its paused flag across a revoke and re-assignment: a partition paused by a
        # retry, taken away meanwhile and given back later would never be read again.
        if not partitions:
            return
        if self._backing_off:
            consumer.pause(partitions)
        else:
            consumer.resume(partitions)
        if self._position is not None:
            self._position.assigned(consumer, partitions)
        log.info("assigned %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Abandon what was consumed from revoked partitions but not processed: nothing of it was
        # committed, so the partitions' next owner gets it again from the committed offset.
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        if revoked:
            self._revoked_meanwhile = True
            if self._inflight is not None and any(p.partition in revoked for p in self._inflight):
                self._inflight_revoked = True
        pending_all = [p for batch in [*self._ready, *self._batcher.flush()] for p in batch]
        self._ready = []
        kept = [p for p in pending_all if (p.message.topic(), p.message.partition()) not in revoked]
        for pending in kept:
            tokens = pending.outcome.tokens if isinstance(pending.outcome, Inbound) else 0
            self._ready.extend(self._batcher.add(pending, tokens))
        # The batch being encoded ahead may hold records of revoked partitions: drop that work.
        self._prefetcher.discard()
        self.metrics.forget_partitions(tp.partition for tp in partitions)
        if self._position is not None:
            self._position.revoked(partitions)
        if partitions:
            log.info("revoked %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions))


def record_age(message: Message, now: float | None = None) -> float:
    """Seconds since the record was produced (its Kafka timestamp), 0 when it has none or it lies in the
    future. A producer's clock may be off: the caller bounds this by what it knows itself."""
    _, timestamp_ms = message.timestamp()
    if not timestamp_ms or timestamp_ms <= 0:
        return 0.0
    return max(0.0, (time.time() if now is None else now) - timestamp_ms / 1000)


def failure_detail(exc: BaseException) -> str:
    return clip_detail(f"{type(exc).__name__}: {exc}")


def next_offsets(batch: list[Pending]) -> list[TopicPartition]:
    """The offsets to commit after ``batch``: one past its last record, per partition."""
    offsets: dict[tuple[str, int], int] = {}
    for pending in batch:
        message = pending.message
        key = (message.topic() or "", message.partition() or 0)
        offsets[key] = max(offsets.get(key, 0), (message.offset() or 0) + 1)
    return [TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()]


def build_worker(
    settings: Settings,
    *,
    stats: WorkerStats | None = None,
    encoder: Encoder | None = None,
    metrics: WorkerMetrics | None = None,
    encoder_for: EncoderFactory | None = None,
) -> Worker:
    """Load the model(s), check the index(es), create missing topics: every fatal error surfaces here.
    ``encoder``: an encoder already loaded for the settings' model; ``encoder_for``: how other models of
    the generations in use are loaded (core/pipeline_factory)."""
    from simstream.core.pipeline_factory import PipelineFactory, load_encoder
    from simstream.core.redis_client import check_access, make_redis_client
    from simstream.producers.topics import ensure_topics

    # The two services first (one PING, then the topics, bounded): a refusal fails the start before the
    # model loads.
    client = make_redis_client(settings)
    check_access(client)
    ensure_topics(settings)
    factory = PipelineFactory(settings, client, encoder_for=encoder_for or load_encoder)
    if encoder is not None:
        factory.seed(settings, encoder)
    pipeline = factory.build()
    position = RedisPosition(AppliedOffsets(client, RedisKeys(settings.redis_prefix), settings.group_id))
    return Worker(
        settings, pipeline, KafkaSink(settings), stats=stats, metrics=metrics, position=position, factory=factory
    )


def run_worker(settings: Settings) -> int:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    log.info("settings: %s", settings.masked())
    metrics = WorkerMetrics()
    model_loaded = threading.Event()  # /healthz is up (and not ready) while the model loads
    with ExitStack() as cleanup:
        try:
            server = start_server(settings, metrics, model_loaded.is_set)
            if server is not None:
                cleanup.callback(server.close)
            worker = build_worker(settings, metrics=metrics)
        except SimstreamError as exc:
            log.error("cannot start: %s", exc)
            return 2
        model_loaded.set()
        worker.install_signal_handlers()
        try:
            worker.run()
        except KafkaAccessError as exc:
            # Rights on the group or topics show only once the consumer asks: still a start-up failure.
            log.error("%s: %s", "fatal, exiting" if worker.stats.batches else "cannot start", exc)
            return 2
        except (SimstreamError, KafkaException) as exc:
            log.error("fatal, exiting: %s", exc)
            return 1
    log.info("stopped after %d records, %d lists emitted", worker.stats.records_in, worker.stats.lists_emitted)
    return 0
