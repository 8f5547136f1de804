"""``simstream terms status|refresh``: the term-statistics snapshot lists are scored with (core/terms).

``refresh`` counts a new snapshot over the texts Redis holds now and switches to it: every list is
rebuilt with it by a worker's bulk pass (the first-load marker, core/first_load), then emitted once.
A kill anywhere is safe: before the switch nothing changed; after it, the marker stays until a pass
completes, and running ``refresh`` again finds the catalog's snapshot current and only waits.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from typing import Final

from simstream.core.audit import read_in_chunks
from simstream.core.errors import SimstreamError
from simstream.core.first_load import FirstLoad
from simstream.core.generations import live_settings
from simstream.core.hybrid import profile_tokens
from simstream.core.redis_client import make_redis_client
from simstream.core.terms import TermsStore, TermStats
from simstream.core.vector_store import RedisVectorStore
from simstream.schemas.settings import Settings

WAIT_POLL_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class TermsStatus:
    current: str | None  # None: no snapshot, uniform token weights
    documents: int  # products the current snapshot counted
    products: int  # products indexed now
    rebuild_pending: bool  # lists are owed a bulk pass (a first load or a switch)


@dataclass(frozen=True, slots=True)
class RefreshReport:
    version: str
    previous: str | None
    documents: int
    vocabulary: int
    count_s: float
    switched: bool  # False: the catalog's snapshot was current already
    rebuild_s: float | None  # waited for the lists to be rebuilt (--wait), else None


def terms_status(settings: Settings) -> TermsStatus:
    with closing(make_redis_client(settings)) as client:
        store = RedisVectorStore.from_settings(live_settings(settings, client), client)
        current = TermsStore(client, store.keys).current()
        pending = FirstLoad(client, store.keys).pending() is not None
        return TermsStatus(
            None if current is None else current.version,
            0 if current is None else current.documents,
            store.count(),
            pending,
        )


def refresh_terms(settings: Settings, *, wait: bool = False, timeout_s: float = 3600.0) -> RefreshReport:
    """Count the catalog's snapshot, switch to it unless current, and optionally wait for the lists."""
    with closing(make_redis_client(settings)) as client:
        store = RedisVectorStore.from_settings(live_settings(settings, client), client)
        terms = TermsStore(client, store.keys)
        previous = terms.current_version()
        started = time.perf_counter()
        texts = read_in_chunks(store.texts, sorted(store.indexed_product_ids()))
        stats = TermStats.of(map(profile_tokens, texts.values()))
        count_s = time.perf_counter() - started
        switched = stats.version != previous
        if switched:
            terms.switch(stats)
        rebuild_s = wait_rebuilt(FirstLoad(client, store.keys), timeout_s) if wait else None
    return RefreshReport(stats.version, previous, stats.documents, len(stats.counts), count_s, switched, rebuild_s)


def wait_rebuilt(marker: FirstLoad, timeout_s: float) -> float:
    """Seconds until no list rebuild is pending (the first-load marker is gone)."""
    started = time.perf_counter()
    while marker.pending() is not None:
        if time.perf_counter() - started > timeout_s:
            raise SimstreamError(f"the lists were not rebuilt within {timeout_s:.0f} s: is a worker running?")
        time.sleep(WAIT_POLL_S)
    return time.perf_counter() - started


def add_terms_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="terms_command", required=True)
    sub.add_parser("status", help="the current snapshot, and whether lists are being rebuilt")
    refresh = sub.add_parser("refresh", help="count a new snapshot over the stored texts and rebuild every list")
    refresh.add_argument("--wait", action="store_true", help="wait until a worker has rebuilt every list")
    refresh.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits (default 3600)")


def cmd_terms(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.terms_command == "status":
            status = terms_status(settings)
            print(
                f"current={status.current or 'none (uniform token weights)'} documents={status.documents} "
                f"products={status.products} rebuild_pending={status.rebuild_pending}"
            )
            return 0
        report = refresh_terms(settings, wait=args.wait, timeout_s=args.timeout)
    except SimstreamError as exc:
        print(f"simstream terms: {exc}", file=sys.stderr)
        return 2
    action = f"switched from {report.previous or 'none'}" if report.switched else "already current"
    print(
        f"terms {report.version}: {action}; {report.documents} documents, {report.vocabulary} tokens, "
        f"counted in {report.count_s:.1f} s"
    )
    if report.rebuild_s is not None:
        print(f"lists rebuilt in {report.rebuild_s:.1f} s")
    return 0
