"""Where a batch's results go: similar-item lists (and tombstones) to the output topic, bad records
to the dead-letter topic. Delivery is confirmed by :meth:`KafkaSink.flush` before offsets move.

With ``Settings.exactly_once`` the producer is transactional (one ``transactional.id`` per worker
instance; zombies are fenced through the consumer group metadata, KIP-447): the worker opens a
transaction per batch (:meth:`KafkaSink.begin`), and :meth:`KafkaSink.commit` puts the batch's input
offsets into the same transaction before committing it. Errors are sorted the way librdkafka asks:
retriable ones are retried in place, abortable ones surface as :class:`TransactionAbortedError`
(the worker aborts and retries the batch), fatal ones (fenced, ...) as :class:`FatalKafkaError`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from simstream.core.errors import SimstreamError
from simstream.core.list_store import StoredList
from simstream.producers.config import base_producer_config
from simstream.producers.topics import DLQ_MAX_MESSAGE_BYTES
from simstream.schemas.codec import DecodeFailure
from simstream.schemas.settings import Settings

log = logging.getLogger("simstream.sink")

T = TypeVar("T")

TXN_TIMEOUT_S = 30.0
# Retriable transaction calls (coordinator moving, broker restarting) are retried in place this long.
TXN_RETRY_BUDGET_S = 120.0
# librdkafka's send_offsets_to_transaction can block past its timeout when the group coordinator
# moves (a broker restart; librdkafka issues 5456 and 5511). Python cannot interrupt that C call, so a
# watchdog ends the process: nothing of the batch was committed, and the restarted worker replays it.
WATCHDOG_GRACE_S = 30.0
WATCHDOG_EXIT_CODE = 70  # EX_SOFTWARE: a supervisor (Kubernetes, compose, chaos) restarts the worker


@contextlib.contextmanager
def exit_if_stuck(what: str, seconds: float) -> Iterator[None]:
    def fire() -> None:
        log.critical("%s still blocked after %.0f s: exiting so that a restart replays the batch", what, seconds)
        logging.shutdown()
        os._exit(WATCHDOG_EXIT_CODE)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


class DeliveryError(SimstreamError):
    """The broker did not acknowledge some records; the batch must be retried, offsets not committed."""


class TransactionAbortedError(DeliveryError):
    """The open transaction cannot commit: the worker aborts it and retries the batch."""


class FatalKafkaError(SimstreamError):
    """The producer cannot go on (fenced by a newer instance, unrecoverable error): exit non-zero."""


class SourceRecord(Protocol):
    """Coordinates of an input record (a confluent Message or a test double)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> str | bytes | None: ...
    def value(self) -> str | bytes | None: ...


def producer_config(settings: Settings, transactional_id: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        **base_producer_config(settings),
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.max.bytes": DLQ_MAX_MESSAGE_BYTES,
    }
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
        config["transaction.timeout.ms"] = settings.transaction_timeout_ms
    return config


def new_transactional_id(settings: Settings) -> str:
    # KIP-447: zombie fencing goes through the group generation, so any unique id is safe. A stable
    # worker_id also lets a restarted instance abort its predecessor's open transaction at once.
    return f"{settings.group_id}-{settings.worker_id or uuid.uuid4().hex[:12]}"


class KafkaSink:
    def __init__(self, settings: Settings, producer: Producer | None = None) -> None:
        self._settings = settings
        self.transactional = settings.exactly_once
        self.transactional_id = new_transactional_id(settings) if self.transactional else None
        self._producer = producer or Producer(producer_config(settings, self.transactional_id))
        self._errors: list[str] = []
        self._in_transaction = False
        if self.transactional:
            self._txn_call("init_transactions", lambda: self._producer.init_transactions(TXN_TIMEOUT_S))

    # --- transactions (no-ops unless exactly_once) ----------------------------------------------

    def begin(self) -> None:
        if self.transactional and not self._in_transaction:
            self._txn_call("begin_transaction", self._producer.begin_transaction)
            self._in_transaction = True

    def commit(self, offsets: Sequence[TopicPartition], group_metadata: Any) -> None:
        """Flush, add the input ``offsets`` to the open transaction and commit it."""
        if not self.transactional:
            raise SimstreamError("commit() belongs to the exactly-once mode; use flush() + the consumer's commit")
        self.flush()
        self._txn_call(
            "send_offsets_to_transaction",
            lambda: self._producer.send_offsets_to_transaction(list(offsets), group_metadata, TXN_TIMEOUT_S),
        )
        self._txn_call("commit_transaction", lambda: self._producer.commit_transaction(TXN_TIMEOUT_S))
        self._in_transaction = False

    def commit_records(self) -> None:
        """Flush and commit the open transaction without input offsets (records whose inputs were
        committed before, such as a first load's lists); at-least-once: flush only."""
        if not self.transactional:
            self.flush()
            return
        self.flush()
        self._txn_call("commit_transaction", lambda: self._producer.commit_transaction(TXN_TIMEOUT_S))
        self._in_transaction = False

    def abort(self) -> None:
        """Abort the open transaction, if any: its records stay invisible to read_committed readers."""
        if not (self.transactional and self._in_transaction):
            return
        self._errors = []
        self._txn_call("abort_transaction", lambda: self._producer.abort_transaction(TXN_TIMEOUT_S))
        self._in_transaction = False

    def _txn_call(self, what: str, call: Callable[[], T]) -> T:
        deadline = time.monotonic() + TXN_RETRY_BUDGET_S
        while True:
            try:
                with exit_if_stuck(what, TXN_TIMEOUT_S + WATCHDOG_GRACE_S):
                    return call()
            except KafkaException as exc:
                error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                if error is None or error.fatal():
                    raise FatalKafkaError(
                        f"{what} failed fatally ({exc}); transactional.id {self.transactional_id} cannot go on "
                        "(fenced by a newer instance, or an unrecoverable producer error)"
                    ) from exc
                if error.txn_requires_abort():
                    raise TransactionAbortedError(f"{what}: the transaction must be aborted: {error}") from exc
                if not error.retriable() or time.monotonic() > deadline:
                    raise DeliveryError(f"{what} failed: {error}") from exc
                log.warning("%s: retriable error, retrying: %s", what, error)

    # --- records ----------------------------------------------------------------------------------

    def emit_lists(self, lists: Sequence[StoredList]) -> None:
        # The exact bytes that become current at similar:{id}: the topic and Redis never disagree.
        for stored in lists:
            self._produce(self._settings.output_topic, stored.product_id.encode(), stored.payload)

    def emit_tombstones(self, product_ids: Sequence[str]) -> None:
        # A null value on the compacted output topic: consumers drop the product's list.
        for product_id in product_ids:
            self._produce(self._settings.output_topic, product_id.encode(), None)

    def dead_letter(self, record: SourceRecord, failure: DecodeFailure) -> None:
        headers: list[tuple[str, str | bytes | None]] = [
            ("reason", failure.reason.encode()),
            ("detail", failure.detail.encode()),
            ("source.topic", (record.topic() or "").encode()),
            ("source.partition", str(record.partition()).encode()),
            ("source.offset", str(record.offset()).encode()),
        ]
        key, value = record.key(), record.value()
        self._produce(
            self._settings.dlq_topic,
            key.encode() if isinstance(key, str) else key,
            value.encode() if isinstance(value, str) else value,
            headers,
        )

    def serve(self) -> None:
        """Serve queued delivery reports and log lines (they wait for a poll) without blocking."""
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> None:
        remaining = self._producer.flush(timeout_s)
        errors, self._errors = self._errors, []
        if remaining:
            raise DeliveryError(f"{remaining} records still undelivered after {timeout_s:.0f} s")
        if errors:
            raise DeliveryError(f"{len(errors)} records not delivered, first: {errors[0]}")

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._errors.append(str(err))

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, headers=headers, on_delivery=self._on_delivery)
                self._producer.poll(0)
                return
            except BufferError:
                self._producer.poll(0.2)  # local queue full: serve delivery reports, then retry
            except KafkaException as exc:
                # In a transaction produce() itself fails once the transaction is in an error state.
                self._txn_error(exc)

    def _txn_error(self, exc: KafkaException) -> None:
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if error is not None and error.fatal():
            raise FatalKafkaError(f"producer failed fatally: {error}") from exc
        if error is not None and error.txn_requires_abort():
            raise TransactionAbortedError(f"produce: the transaction must be aborted: {error}") from exc
        raise DeliveryError(f"produce failed: {exc}") from exc
