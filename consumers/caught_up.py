"""Has a consumer read everything its partitions hold? (a first load builds its lists then)."""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaException

# Broker round trips here happen at most once a second, and only while the worker is idle.
TIMEOUT_S = 5.0


def caught_up(consumer: Consumer) -> bool:
    """True when the consumer has partitions and its position in each is at the high watermark (the
    last stable offset under read_committed); a partition read from nowhere yet counts from its
    committed offset. False when that cannot be told now (the broker does not answer)."""
    assigned = consumer.assignment()
    if not assigned:
        return False
    try:
        positions = consumer.position(assigned)
        unknown = [tp for tp in positions if tp.offset < 0]
        known = [tp for tp in positions if tp.offset >= 0]
        if unknown:
            known += consumer.committed(unknown, timeout=TIMEOUT_S)
        for tp in known:
            low, high = consumer.get_watermark_offsets(tp, timeout=TIMEOUT_S, cached=False)
            position = tp.offset if tp.offset >= 0 else low
            if position < high:
                return False
    except KafkaException:
        return False
    return True
