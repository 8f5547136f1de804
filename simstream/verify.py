"""``simstream verify``: audit the live state (Redis, and the output topic) against exact brute force.

The checks themselves are in ``simstream.core.audit``; this module reads the state, prints the report
and turns the thresholds given as flags into the exit code (0 within them, 1 past them, 2 on errors).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace

import orjson
import redis

from simstream.core.audit import Thresholds, VerifyReport, audit, threshold_failures
from simstream.core.errors import SimstreamError
from simstream.core.first_load import FirstLoad
from simstream.core.generations import live_settings
from simstream.core.list_store import ListStore, StoredList
from simstream.core.query_syntax import escape_glob
from simstream.core.redis_client import make_redis_client, redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import text
from simstream.core.similarity import SimilarityPolicy
from simstream.core.terms import TermsStore
from simstream.core.vector_store import RedisVectorStore, Vector
from simstream.schemas.settings import Settings

__all__ = [
    "RedisAuditSource",
    "VerifyReport",
    "add_verify_arguments",
    "cmd_verify",
    "format_report",
    "run_verify",
]


class RedisAuditSource:
    """What the audit reads, from Redis: the vector store, the list store, and SCANs of their keys."""

    def __init__(self, client: redis.Redis, store: RedisVectorStore, lists: ListStore) -> None:
        self._client = client
        self._store = store
        self._lists = lists

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis | None = None) -> RedisAuditSource:
        client = client if client is not None else make_redis_client(settings)
        return cls(
            client,
            RedisVectorStore.from_settings(settings, client),
            ListStore.from_settings(settings, client),
        )

    def product_ids(self) -> list[str]:
        return self._store.all_product_ids()

    def embeddings(self, ids: Sequence[str]) -> dict[str, Vector]:
        return self._store.embeddings(ids)

    def categories(self, ids: Sequence[str]) -> dict[str, str]:
        return {pid: meta.get("category", "") for pid, meta in self._store.metadata(ids).items()}

    def texts(self, ids: Sequence[str]) -> dict[str, str]:
        return self._store.texts(ids)

    def list_owner_ids(self) -> list[str]:
        return self._scan_ids(self._lists.keys.similar(""))

    def read_lists(self, ids: Sequence[str]) -> dict[str, StoredList]:
        return self._lists.read_lists(ids)

    def read_pools(self, ids: Sequence[str]) -> dict[str, set[str]]:
        return self._lists.read_pools(ids)

    def rev_member_ids(self) -> list[str]:
        return self._scan_ids(self._lists.keys.rev_prefix)

    def rev_many(self, ids: Sequence[str]) -> dict[str, set[str]]:
        return self._lists.rev_many(ids)

    def _scan_ids(self, key_prefix: str) -> list[str]:
        pattern = escape_glob(key_prefix) + "*"
        with redis_errors(f"scan keys {pattern!r}"):
            keys = [text(key) for key in self._client.scan_iter(match=pattern, count=1000)]
        return sorted({key.removeprefix(key_prefix) for key in keys})


def run_verify(
    settings: Settings,
    *,
    sample: int | None = None,
    check_output: bool = True,
    seed: int = 0,
    output_timeout_s: float = 60.0,
) -> VerifyReport:
    """Audit the state the settings point at (Redis prefix, output topic, similarity policy)."""
    output = None
    if check_output:
        # Imported here: the output reader is the only part that needs confluent_kafka.
        from simstream.consumers.output_reader import read_last_records

        output = read_last_records(settings, timeout_s=output_timeout_s)
    client = make_redis_client(settings)
    settings = live_settings(settings, client)  # the live model's vectors are what lists are exact for
    source = RedisAuditSource.from_settings(settings, client)
    # Scored with the snapshot the lists are kept exact for (core/terms).
    terms = TermsStore(client, RedisKeys(settings.redis_prefix)).current()
    policy = replace(SimilarityPolicy.from_settings(settings), terms=terms)
    report = audit(source, policy, output=output, sample=sample, seed=seed)
    # Read after the audit: a load that finished meanwhile leaves a report that is already settled.
    pending = FirstLoad.from_settings(settings, client).pending() is not None
    return replace(report, first_load_pending=pending)


def format_report(report: VerifyReport) -> str:
    sampled = "" if report.sampled == report.products else f" (sampled {report.sampled})"
    output = (
        "not read (--no-output)"
        if report.output_mismatches is None
        else f"{report.output_mismatches} mismatches over {report.output_records} keys"
    )
    lines = [
        f"products           {report.products}{sampled}, lists {report.lists}, top_k {report.top_k}",
        f"overlap@K          mean {report.overlap_at_k_mean:.4f}, min {report.overlap_at_k_min:.4f}",
        f"missing lists      {report.missing_lists}",
        f"orphan lists       {report.orphan_lists}",
        f"deleted in lists   {report.deleted_in_lists}",
        f"score errors       {report.score_errors}",
        f"misordered lists   {report.misordered_lists}",
        f"rev errors         {report.rev_errors}",
        f"output topic       {output}",
    ]
    if report.first_load_pending:
        lines.append(
            "first load         pending (or a term switch): lists are built in bulk once the input backlog is drained"
        )
    if report.lowest_overlap:
        worst = ", ".join(f"{pid} {value:.2f}" for pid, value in report.lowest_overlap)
        lines.append(f"lowest overlap     {worst}")
    for kind, found in sorted(report.examples.items()):
        lines.append(f"e.g. {kind}:")
        lines += [f"  {item}" for item in found]
    return "\n".join(lines)


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Thresholds()
    parser.add_argument("--sample", type=_count, default=None, metavar="N", help="brute-force N products only (seeded)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --sample draw")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-output", action="store_true", help="skip reading the output topic")
    parser.add_argument("--output-timeout", type=float, default=60.0, metavar="S")
    parser.add_argument("--min-overlap-mean", type=float, default=defaults.min_overlap_mean)
    parser.add_argument("--min-overlap-min", type=float, default=defaults.min_overlap_min)
    parser.add_argument("--max-missing-lists", type=int, default=defaults.max_missing_lists)
    parser.add_argument("--max-orphan-lists", type=int, default=defaults.max_orphan_lists)
    parser.add_argument("--max-deleted", type=int, default=defaults.max_deleted)
    parser.add_argument("--max-score-errors", type=int, default=defaults.max_score_errors)
    parser.add_argument("--max-misordered", type=int, default=defaults.max_misordered)
    parser.add_argument("--max-rev-errors", type=int, default=defaults.max_rev_errors)
    parser.add_argument("--max-output-mismatches", type=int, default=defaults.max_output_mismatches)


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return number


def thresholds_from_args(args: argparse.Namespace) -> Thresholds:
    return Thresholds(
        min_overlap_mean=args.min_overlap_mean,
        min_overlap_min=args.min_overlap_min,
        max_missing_lists=args.max_missing_lists,
        max_orphan_lists=args.max_orphan_lists,
        max_deleted=args.max_deleted,
        max_score_errors=args.max_score_errors,
        max_misordered=args.max_misordered,
        max_rev_errors=args.max_rev_errors,
        max_output_mismatches=args.max_output_mismatches,
    )


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    try:
        report = run_verify(
            settings,
            sample=args.sample,
            check_output=not args.no_output,
            seed=args.seed,
            output_timeout_s=args.output_timeout,
        )
    except SimstreamError as exc:
        print(f"simstream verify: {exc}", file=sys.stderr)
        return 2
    failures = threshold_failures(report, thresholds_from_args(args))
    if args.json:
        summary = {**report.as_dict(), "ok": not failures, "failures": failures}
        sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(format_report(report))
        print("OK" if not failures else "FAILED: " + "; ".join(failures))
    return 0 if not failures else 1
