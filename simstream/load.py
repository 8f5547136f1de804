"""``simstream load FILE``: a catalog file straight into Redis, then every list built once in bulk.

The first load of a large catalog through the stream recomputes lists as the catalog grows around
them; this writes the products first (the pipeline's fenced writes, encoder batches, no list work) and
then builds every pool and list in blocks (core/bulk_lists), emitting the lists to the output topic
before they become current. The first-load marker (core/first_load) is set for the whole run: a load
that is killed is finished by a running worker when it is idle, or by running the same command again
(the writes are version-fenced; the bulk pass skips lists that did not change). Live updates that a
worker processes meanwhile are written at once and listed by the bulk pass.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from simstream.core.bulk_lists import BulkReport
from simstream.core.encoder import Encoder
from simstream.core.frozen_heap import frozen_heap
from simstream.core.generations import GenerationsMoved
from simstream.core.list_store import StoredList
from simstream.core.pipeline import Inbound
from simstream.core.pipeline_factory import PipelineFactory
from simstream.core.redis_client import check_access, make_redis_client
from simstream.producers.catalog import CatalogFormat, read_catalog
from simstream.producers.publish import event_for
from simstream.producers.sink import KafkaSink
from simstream.producers.topics import ensure_topics
from simstream.schemas.settings import Settings


@dataclass(frozen=True, slots=True)
class LoadReport:
    rows: int
    invalid: int
    written: int  # products written or deleted (stale rows excluded)
    stale: int  # rows at or below the stored version: nothing to write
    write_s: float  # encode + fenced writes
    encode_s: float
    lists: BulkReport
    first_errors: tuple[str, ...]


def load_file(
    settings: Settings,
    path: Path,
    *,
    fmt: CatalogFormat | None = None,
    mapping: dict[str, str] | None = None,
    id_prefix: str = "",
    version: int | None = None,
    encoder: Encoder | None = None,
    progress: bool = True,
) -> LoadReport:
    run_version = version if version is not None else time.time_ns() // 1_000_000
    errors: list[str] = []
    rows = list(read_catalog(path, fmt=fmt, mapping=mapping, id_prefix=id_prefix))
    events = []
    for row in rows:
        try:
            events.append(event_for(row, version=run_version, event_type="product.created"))
        except ValueError as exc:
            errors.append(f"line {row.line}: {exc}")
    with closing(make_redis_client(settings)) as client:
        check_access(client)
        ensure_topics(settings)
        # The live model generation's pipeline, writing the shadow one too while an upgrade runs.
        factory = PipelineFactory(settings, client, first_load_on_empty=False)
        if encoder is not None:
            factory.seed(settings, encoder)
        pipeline = factory.build()
        assert pipeline.first_load is not None
        pipeline.first_load.begin()  # already marked: a killed load, or a worker's first load, is joined
        sink = KafkaSink(settings)
        started = time.perf_counter()
        written = stale = 0
        encode_s = 0.0
        chunk = settings.batch_max_items * 4  # several encoder batches per round of writes
        now = time.time()
        with (
            frozen_heap(),  # as the worker runs (consumers/worker.py)
            tqdm(total=len(events), desc=f"load {path.name}", unit="product", disable=not progress) as bar,
        ):
            for start in range(0, len(events), chunk):
                batch: Sequence[Inbound] = [pipeline.prepare(e, now) for e in events[start : start + chunk]]
                try:
                    result = pipeline.process(batch, list_work=False)
                except GenerationsMoved:  # `simstream model` changed them: again, for the new ones
                    pipeline = factory.build()
                    result = pipeline.process(batch, list_work=False)
                written += result.encoded + result.metadata_only + result.deleted
                stale += result.stale
                encode_s += result.encode_seconds
                bar.update(len(batch))
        write_s = time.perf_counter() - started

        def emit(lists: Sequence[StoredList]) -> None:
            sink.begin()
            sink.emit_lists(lists)
            sink.commit_records()

        first_load = pipeline.first_load
        assert first_load is not None
        seen = first_load.pending()
        lists = pipeline.finish_first_load(seen, emit) if seen is not None else BulkReport(finished=True)
    return LoadReport(len(rows), len(errors), written, stale, write_s, encode_s, lists, tuple(errors[:5]))


def format_load_report(report: LoadReport) -> str:
    lists = report.lists
    pending = "" if lists.finished else " (a worker wrote meanwhile: the next idle worker builds them again)"
    return (
        f"rows={report.rows} invalid={report.invalid} written={report.written} stale={report.stale} "
        f"in {report.write_s:.1f} s (encoder {report.encode_s:.1f} s)\n"
        f"lists: {lists.products} built in bulk, {lists.emitted} emitted, {lists.unchanged} unchanged in "
        f"{lists.seconds:.1f} s (read {lists.read_s:.1f}, score {lists.score_s:.1f}, rank {lists.rank_s:.1f}, "
        f"write {lists.write_s:.1f}){pending}"
    )
