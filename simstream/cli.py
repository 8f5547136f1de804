"""The `simstream` command. Each subcommand imports what it needs lazily: `config` never loads torch."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import orjson
from pydantic import ValidationError
from pydantic_settings import SettingsError

from simstream.chaos import add_chaos_arguments, cmd_chaos
from simstream.eval_quality import add_eval_arguments, cmd_eval
from simstream.model_command import add_model_arguments, cmd_model
from simstream.schemas.settings import Settings
from simstream.terms_command import add_terms_arguments, cmd_terms
from simstream.verify import add_verify_arguments, cmd_verify

if TYPE_CHECKING:
    from simstream.devstack.stack import ServiceStatus

Handler = Callable[[argparse.Namespace, Settings], int]


class OneLineParser(argparse.ArgumentParser):
    """Input errors as one line (argparse's default prints the whole usage first), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (``-k 0`` and ``-k -5`` are input errors)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0 (minutes, seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text!r}")
    return value


def price(text: str) -> float:
    """An argparse type: a finite amount of at least 0 (``nan`` or ``inf`` would match every product)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 0, got {text!r}")
    return value


def settings_problem(exc: ValidationError | SettingsError) -> str:
    """One line naming each invalid setting by its environment variable (never its value: it may be a secret)."""
    if isinstance(exc, SettingsError):
        return str(exc)
    problems = []
    for error in exc.errors():
        names = [str(part) for part in error["loc"]]
        where = f"SIMSTREAM_{names[0].upper()}: " if names else ""
        problems.append(f"{where}{error['msg']}")
    return "; ".join(problems)


def _print_json(obj: object) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    _print_json(settings.masked())
    return 0


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    from simstream.devstack import stack
    from simstream.producers.topics import KafkaAccessError

    # --kafka-brokers, else SIMSTREAM_DEV_KAFKA_BROKERS, else what the last `up` here started: a plain
    # `dev status` or `dev down` then sees the whole cluster.
    brokers = args.kafka_brokers
    if brokers is None and "dev_kafka_brokers" not in settings.model_fields_set:
        brokers = stack.recorded_kafka_nodes(settings)
    if brokers is not None and brokers != settings.dev_kafka_brokers:
        try:
            settings = Settings(**{**dict(settings), "dev_kafka_brokers": brokers})
        except ValueError as exc:
            print(f"simstream dev {args.action}: invalid settings: {exc}", file=sys.stderr)
            return 2
    try:
        if args.action == "up":
            services = stack.up(settings)
            _create_dev_topics(settings, services)
        elif args.action == "down":
            services = stack.down(settings)
        else:
            services = stack.status(settings)
    except (stack.DevStackError, KafkaAccessError) as exc:
        print(f"simstream dev {args.action}: {exc}", file=sys.stderr)
        return 1
    print(stack.format_status(services))
    healthy = all(s.running for s in services)
    return 0 if args.action == "down" or healthy else 1


def _create_dev_topics(settings: Settings, services: list[ServiceStatus]) -> None:
    """The worker's topics, made by ``dev up`` when the settings point at the dev broker: a producer
    that comes first (``publish``, a Java or kafkajs client) would get an auto-created 1-partition topic."""
    from simstream.producers.topics import ensure_topics

    if any(s.name == "kafka" and s.running and s.endpoint == settings.kafka_bootstrap for s in services):
        ensure_topics(settings)


def cmd_schema_export(args: argparse.Namespace, settings: Settings) -> int:
    from simstream.schemas.json_schema import export_json_schemas

    for path in export_json_schemas(Path(args.dir)):
        print(path)
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from simstream.consumers.worker import run_worker

    return run_worker(settings)


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    from simstream.producers.catalog import CatalogError, parse_mapping
    from simstream.producers.publish import publish_file
    from simstream.producers.topics import KafkaAccessError

    try:
        report = publish_file(
            settings,
            Path(args.file),
            fmt=args.format,
            mapping=parse_mapping(args.map),
            id_prefix=args.id_prefix,
            version=args.version,
            event_type=args.type,
            progress=not args.quiet,
        )
    except (CatalogError, OSError, KafkaAccessError) as exc:
        print(f"simstream publish: {exc}", file=sys.stderr)
        return 2
    print(f"sent={report.sent} failed={report.failed} invalid={report.invalid}")
    for err in report.first_errors:
        print(f"  error: {err}", file=sys.stderr)
    return 0 if report.failed == 0 and report.invalid == 0 else 1


def cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    from simstream.core.errors import SimstreamError
    from simstream.load import format_load_report, load_file
    from simstream.producers.catalog import CatalogError, parse_mapping

    try:
        report = load_file(
            settings,
            Path(args.file),
            fmt=args.format,
            mapping=parse_mapping(args.map),
            id_prefix=args.id_prefix,
            version=args.version,
            progress=not args.quiet,
        )
    except (CatalogError, OSError, SimstreamError) as exc:
        print(f"simstream load: {exc}", file=sys.stderr)
        return 2
    print(format_load_report(report))
    for err in report.first_errors:
        print(f"  error: {err}", file=sys.stderr)
    return 0 if report.invalid == 0 else 1


def cmd_similar(args: argparse.Namespace, settings: Settings) -> int:
    from simstream.queries import show_similar

    return show_similar(settings, args.product_id, as_json=args.json)


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from simstream.queries import search

    return search(
        settings,
        args.text,
        k=args.k,
        category=args.category,
        brand=args.brand,
        max_price=args.max_price,
        min_price=args.min_price,
        as_json=args.json,
    )


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.target in ("redis", "pipeline", "stage", "scoring"):
        return _bench_more(args, settings)
    if args.target == "refresh":
        from simstream.bench_refresh import format_refresh_table, run_refresh_bench

        result = run_refresh_bench(settings, updates=args.updates, batch=args.batch, catalog_limit=args.catalog_limit)
        print(orjson.dumps(result).decode() if args.json else format_refresh_table(result))
        return 0
    from simstream.bench_encoder import format_encoder_table, run_encoder_bench

    result = run_encoder_bench(settings, n_items=args.n_items, repeats=args.repeats, threads=args.threads)
    if args.json:
        _print_json(result)
    else:
        print(format_encoder_table(result))
    return 0


def _bench_more(args: argparse.Namespace, settings: Settings) -> int:
    if args.target == "redis":
        from simstream.bench_redis import format_redis_table, run_redis_bench

        sizes = [int(size) for size in args.sizes.split(",")]
        result = run_redis_bench(
            settings, sizes=sizes, m=args.m, ef_construction=args.ef_construction, ef_runtime=args.ef_runtime,
            queries=args.queries, encode_budget_s=args.encode_budget_s,
        )  # fmt: skip
        print(orjson.dumps(result).decode() if args.json else format_redis_table(result))
    elif args.target == "pipeline":
        from simstream.bench_pipeline import BenchError, format_pipeline_table, run_pipeline_bench

        try:
            result = run_pipeline_bench(
                settings, catalog_limit=args.catalog_limit, catalog_size=args.catalog_size,
                encode_budget_s=args.encode_budget_s, backlog=args.backlog, paced_seconds=args.paced_seconds,
                paced_rates=args.paced_rate,
            )  # fmt: skip
        except (BenchError, ValueError) as exc:
            print(f"simstream bench pipeline: {exc}", file=sys.stderr)
            return 1
        print(orjson.dumps(result).decode() if args.json else format_pipeline_table(result))
    elif args.target == "scoring":
        from simstream.bench_scoring import format_scoring_table, run_scoring_bench

        result = run_scoring_bench(size=args.size, affected=args.affected)
        print(orjson.dumps(result).decode() if args.json else format_scoring_table(result))
    else:
        from simstream.bench_stage import format_stage_table, run_stage_bench

        result = run_stage_bench(settings, n_items=args.n_items, repeats=args.repeats, catalog=args.catalog_limit)
        print(orjson.dumps(result).decode() if args.json else format_stage_table(result))
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from simstream.demo import run_demo

    return run_demo(settings, products=args.products, upgrade_to=args.upgrade_to)


def cmd_redis_shell(args: argparse.Namespace, settings: Settings) -> int:
    from simstream.redis_shell import run_redis_shell

    return run_redis_shell(settings, args.words)


def cmd_soak(args: argparse.Namespace, settings: Settings) -> int:
    from simstream.soak import cmd_soak as run_soak_command

    return run_soak_command(args, settings)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="simstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("config", help="print the effective settings, secrets masked").set_defaults(handler=cmd_config)

    dev = sub.add_parser("dev", help="the local stack: real Kafka + Redis on 127.0.0.1, no Docker")
    dev.add_argument("action", choices=["up", "down", "status"])
    dev.add_argument(
        "--kafka-brokers",
        type=int,
        metavar="N",
        help="Kafka nodes: 1, or a KRaft cluster of N (3: replication 3, min.insync.replicas 2); "
        "default SIMSTREAM_DEV_KAFKA_BROKERS, else what the last `up` in this state dir started",
    )
    dev.set_defaults(handler=cmd_dev)

    schema = sub.add_parser("schema", help="wire contracts")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True)
    export = schema_sub.add_parser("export", help="write the JSON Schema files")
    export.add_argument("dir")
    export.set_defaults(handler=cmd_schema_export)

    sub.add_parser("run", help="run the streaming worker").set_defaults(handler=cmd_run)

    publish = sub.add_parser("publish", help="publish a catalog file (JSON Lines or CSV) as product events")
    publish.add_argument("file")
    publish.add_argument("--format", choices=["jsonl", "csv"], default=None)
    publish.add_argument("--map", default=None, help="CSV column mapping, field=column,... (title=name,...)")
    publish.add_argument("--id-prefix", default="", help="prepended to every product id")
    publish.add_argument("--version", type=int, default=None, help="catalog revision (default: epoch ms)")
    publish.add_argument("--type", choices=["product.created", "product.updated"], default="product.created")
    publish.add_argument("--quiet", action="store_true")
    publish.set_defaults(handler=cmd_publish)

    load = sub.add_parser("load", help="load a catalog file into Redis and build every list in bulk")
    load.add_argument("file")
    load.add_argument("--format", choices=["jsonl", "csv"], default=None)
    load.add_argument("--map", default=None, help="CSV column mapping, field=column,... (title=name,...)")
    load.add_argument("--id-prefix", default="", help="prepended to every product id")
    load.add_argument("--version", type=int, default=None, help="catalog revision (default: epoch ms)")
    load.add_argument("--quiet", action="store_true")
    load.set_defaults(handler=cmd_load)

    similar = sub.add_parser("similar", help="print a product's stored similar-item list")
    similar.add_argument("product_id")
    similar.add_argument("--json", action="store_true")
    similar.set_defaults(handler=cmd_similar)

    search = sub.add_parser("search", help="embed a query and run a filtered KNN")
    search.add_argument("text")
    search.add_argument("-k", type=positive_int, default=10)
    search.add_argument("--category", default=None)
    search.add_argument("--brand", default=None)
    search.add_argument("--max-price", type=price, default=None)
    search.add_argument("--min-price", type=price, default=None)
    search.add_argument("--json", action="store_true")
    search.set_defaults(handler=cmd_search)

    bench = sub.add_parser("bench", help="benchmarks (print figures; --json for one JSON object)")
    bench.add_argument("target", choices=["encoder", "refresh", "redis", "pipeline", "stage", "scoring"])
    bench.add_argument("--sizes", default="2000,10000", help="redis: index sizes (beyond 2,173: variants)")
    bench.add_argument("--m", type=int, default=None, help="redis: HNSW M (default: settings)")
    bench.add_argument("--ef-construction", type=int, default=None, help="redis: HNSW EF_CONSTRUCTION")
    bench.add_argument("--ef-runtime", type=int, default=None, help="redis: HNSW EF_RUNTIME")
    bench.add_argument("--queries", type=int, default=200, help="redis: KNN queries per size and kind")
    bench.add_argument("--encode-budget-s", type=float, default=120.0, help="redis/pipeline: seconds re-encoding")
    bench.add_argument("--catalog-limit", type=int, default=None, help="pipeline/stage/refresh: real offers used")
    bench.add_argument(
        "--catalog-size", type=positive_int, default=None, metavar="N",
        help="pipeline: N products in all, generated ones (written and listed in bulk) beside the real offers",
    )  # fmt: skip
    bench.add_argument("--size", type=positive_int, default=100_000, help="scoring: catalog rows for block_top_k")
    bench.add_argument("--affected", type=positive_int, default=4096, help="scoring: rows a batch is scored against")
    bench.add_argument("--backlog", type=int, default=400, help="pipeline: updates in the saturating backlog")
    bench.add_argument("--paced-seconds", type=float, default=15.0, help="pipeline: seconds per paced rate")
    bench.add_argument(
        "--paced-rate", type=float, action="append", default=[], metavar="UPDATES_PER_S",
        help="pipeline: also pace at this absolute rate (repeatable): freshness at the same load in every run",
    )  # fmt: skip
    bench.add_argument("--updates", type=int, default=200, help="refresh: updates per mode")
    bench.add_argument("--batch", type=int, default=32, help="refresh: events per batch")
    bench.add_argument("--n-items", type=int, default=512)
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--threads", type=int, default=None)
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(handler=cmd_bench)

    evaluate = sub.add_parser("eval", help="similarity quality on real offers (Abt-Buy by default)")
    add_eval_arguments(evaluate)
    evaluate.set_defaults(handler=cmd_eval)

    verify = sub.add_parser("verify", help="audit the live state against exact brute force")
    add_verify_arguments(verify)
    verify.set_defaults(handler=cmd_verify)

    chaos = sub.add_parser("chaos", help="fault injection on a private stack: kills, outages, scaling, fuzz")
    add_chaos_arguments(chaos)
    chaos.set_defaults(handler=cmd_chaos)

    shell = sub.add_parser("redis-shell", help="a Redis prompt with the settings' URL, user, password and TLS")
    shell.add_argument("words", nargs=argparse.REMAINDER, metavar="COMMAND ...", help="run one command and exit")
    shell.set_defaults(handler=cmd_redis_shell)

    terms = sub.add_parser("terms", help="the term-statistics snapshot (IDF) lists are scored with")
    add_terms_arguments(terms)
    terms.set_defaults(handler=cmd_terms)
    model = sub.add_parser("model", help="change the model without downtime: shadow index, gate, promote, rollback")
    add_model_arguments(model)
    model.set_defaults(handler=cmd_model)

    soak = sub.add_parser("soak", help="the worker process at half load for minutes: RSS growth, freshness")
    soak.add_argument("--minutes", type=positive_float, default=30.0, help="minutes of paced load after warm-up")
    soak.add_argument("--products", type=positive_int, default=2173, help="the first N Abt-Buy offers (max 2173)")
    soak.add_argument("--warmup", type=positive_float, default=60.0, metavar="S", help="seconds before measuring")
    soak.add_argument("--backlog", type=positive_int, default=300, help="updates drained to measure the rate")
    soak.add_argument("--seed", type=int, default=0)
    soak.add_argument("--json", action="store_true")
    soak.set_defaults(handler=cmd_soak)

    demo = sub.add_parser("demo", help="the main job on the local stack (make demo)")
    demo.add_argument("--products", type=positive_int, default=None, help="the first N offers only (default: all)")
    demo.add_argument(
        "--upgrade-to",
        default=None,
        metavar="MODEL",
        help="then change the model while the worker runs (`simstream model`): a model name or folder, "
        "or int8 for a quantised copy of the default model",
    )
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        settings = Settings()
    except (ValidationError, SettingsError) as exc:
        print(f"simstream: invalid settings: {settings_problem(exc)}", file=sys.stderr)
        return 2
    return handler(args, settings)


if __name__ == "__main__":
    raise SystemExit(main())
