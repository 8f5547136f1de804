"""A shadow model generation filled from what the live one holds (`simstream model upgrade`).

Every product the live generation holds (its stored text, metadata and version, and the version fence
of a deleted one) is written into the shadow generation through its :class:`CatalogWriter`, in chunks:
read pipelined, encoded with the shadow model in one call, written fenced. The shadow's fences make it
resumable and safe beside the workers, which write every change into the shadow as well from the
moment the shadow is registered: a product the shadow already holds at the live version is neither
encoded nor written again, and an older copy never overwrites a newer change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis

from simstream.core.catalog_copy import CatalogRecord, CatalogWriter, CopyCounts
from simstream.core.redis_client import redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import text

# Products per chunk: one pipelined read, one encoder call, one pipelined write.
CHUNK = 256

_FIELDS = ("version", "text", "title", "brand", "category", "price")


@dataclass(slots=True)
class BackfillReport:
    total: int = 0  # products of either generation looked at
    done: int = 0
    counts: CopyCounts = field(default_factory=CopyCounts)
    seconds: float = 0.0


Progress = Callable[[BackfillReport], None]


def read_records(client: redis.Redis, keys: RedisKeys, ids: Sequence[str]) -> list[CatalogRecord]:
    """The products ``ids`` as one generation holds them: stored ones, and deleted ones at their fence."""
    pipe = client.pipeline(transaction=False)
    for product_id in ids:
        pipe.hmget(keys.product(product_id), list(_FIELDS))
        pipe.get(keys.version_fence(product_id))
    with redis_errors(f"read {len(ids)} product(s)"):
        replies = pipe.execute()
    records: list[CatalogRecord] = []
    for i, product_id in enumerate(ids):
        values, fence = replies[2 * i], replies[2 * i + 1]
        version, stored_text, title, brand, category, price = (None if v is None else text(v) for v in values)
        if version is None:
            if fence is not None:  # deleted: the shadow drops its copy at the same version
                records.append(CatalogRecord(product_id, int(fence), None))
            continue
        records.append(
            CatalogRecord(
                product_id,
                int(version),
                stored_text or title or "",  # hashes written before texts were stored embed their title
                title or "",
                brand or "",
                category or "",
                None if not price else float(price),
            )
        )
    return records


def backfill(
    client: redis.Redis,
    live_keys: RedisKeys,
    ids: Sequence[str],
    writer: CatalogWriter,
    *,
    progress: Progress | None = None,
    chunk: int = CHUNK,
) -> BackfillReport:
    """Copy the products ``ids`` (every id either generation indexes) from the live generation into the
    shadow one; see the module doc."""
    report = BackfillReport(total=len(ids))
    started = time.perf_counter()
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        report.counts.add(writer.write(read_records(client, live_keys, part)))
        report.done += len(part)
        report.seconds = time.perf_counter() - started
        if progress is not None:
            progress(report)
    report.seconds = time.perf_counter() - started
    return report
