"""`make demo`: the main job on the local stack, end to end, on the bundled Abt-Buy catalog.

Starts the stack, resets the demo's own namespace (its topics, index and keys; nothing else),
runs the worker, publishes the 2,173 real offers while it runs, waits until every product has an
emitted list, then prints a few lists, products/s and the freshness percentiles, and last the commands
that inspect what it built (``similar``, ``search``, ``verify``, ``redis-shell``), exactly as typed.

The demo keeps its own namespace (``demo.*`` topics, ``simstream-demo:`` keys) rather than the default
one: a rerun deletes and rebuilds everything it owns, which must never be a user's ``products`` topic or
``simstream:`` keys. The printed commands therefore start with the ``export`` that selects it.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import threading
import time
from importlib.resources import files
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from simstream.chaos import abt_buy_products, publish_records
from simstream.consumers.stats import WorkerStats
from simstream.consumers.worker import build_worker
from simstream.core.generations import live_settings
from simstream.core.list_store import ListStore
from simstream.core.namespace import clear_redis_namespace
from simstream.core.redis_client import make_redis_client
from simstream.core.vector_store import RedisVectorStore
from simstream.devstack import stack
from simstream.producers.catalog import read_catalog
from simstream.producers.publish import product_event, publish_file
from simstream.queries import printable
from simstream.schemas.codec import encode_event
from simstream.schemas.settings import Settings, kafka_client_config

SHOWN_PRODUCTS = ("abt-552", "abt-580", "buy-10011646", "abt-38477", "buy-10140760")
SEARCH_EXAMPLE = "sony turntable"
TIMEOUT_S = 1800.0


def sample_catalog() -> tuple[Path, Path]:
    root = Path(str(files("simstream") / "data" / "abt-buy"))
    return root / "Abt.csv", root / "Buy.csv"


def demo_settings(settings: Settings) -> Settings:
    """The demo's own topics, group, index and key prefix: a rerun starts clean, touches nothing else."""
    return settings.model_copy(
        update={
            "input_topic": "demo.products",
            "output_topic": "demo.similar-items",
            "dlq_topic": "demo.products.dlq",
            "group_id": "simstream-demo",
            "redis_prefix": "simstream-demo:",
            "index_name": "simstream-demo-idx-v1",
            "index_alias": "simstream-demo-idx",
        }
    )


def reset_namespace(settings: Settings) -> None:
    admin = AdminClient(kafka_client_config(settings))
    topics = [settings.input_topic, settings.output_topic, settings.dlq_topic]
    existing = admin.list_topics(timeout=30).topics
    doomed = [t for t in topics if t in existing]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result(30)
        deadline = time.monotonic() + 60
        while any(t in admin.list_topics(timeout=30).topics for t in doomed) and time.monotonic() < deadline:
            time.sleep(0.5)
    with contextlib.suppress(KafkaException):  # the group does not exist on a first run
        admin.delete_consumer_groups([settings.group_id])[settings.group_id].result(30)
    clear_redis_namespace(settings)


def run_demo(base: Settings, products: int | None = None, upgrade_to: str | None = None) -> int:
    """The whole catalog, or its first ``products`` offers (a shorter run, e.g. for a test); then, with
    ``upgrade_to``, a model change while the worker keeps running (:func:`demo_upgrade`)."""
    print("== starting the local stack (real Kafka + Redis on 127.0.0.1)")
    for svc in stack.up(base):
        print(f"   {svc.name}: {svc.endpoint} version={svc.version} pid={svc.pid}")
    settings = demo_settings(
        base.model_copy(
            update={
                "kafka_bootstrap": f"127.0.0.1:{base.dev_kafka_port}",
                "redis_url": f"redis://127.0.0.1:{base.dev_redis_port}/0",
            }
        )
    )
    reset_namespace(settings)
    abt, buy = sample_catalog()
    subset = abt_buy_products(products) if products else None
    expected = (
        len(subset) if subset is not None else sum(1 for _ in read_catalog(abt)) + sum(1 for _ in read_catalog(buy))
    )

    print("== loading the model and starting the worker")
    stats = WorkerStats()
    worker = build_worker(settings, stats=stats)
    done = threading.Event()
    started = time.monotonic()
    thread = threading.Thread(
        target=worker.run,
        kwargs={"stop_when": lambda: done.is_set() or time.monotonic() - started > TIMEOUT_S},
        daemon=True,
    )
    thread.start()

    print(f"== publishing {expected} Abt-Buy offers while the worker runs")
    if subset is not None:
        publish_records(settings, [(pid.encode(), encode_event(product_event(pid, 1, p))) for pid, p in subset])
    else:
        for path, prefix in ((abt, "abt-"), (buy, "buy-")):
            report = publish_file(settings, path, id_prefix=prefix)
            print(f"   {path.name}: sent={report.sent} failed={report.failed} invalid={report.invalid}")
    first = time.monotonic()
    while len(stats.emitted_ids) < expected and thread.is_alive() and time.monotonic() - started < TIMEOUT_S:
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    if upgrade_to is not None and thread.is_alive():
        demo_upgrade(settings, upgrade_to)
    done.set()
    thread.join(60)

    listed = len(stats.emitted_ids)
    print(f"== {listed}/{expected} products embedded with an emitted list in {elapsed:.1f} s")
    shown = show_lists(settings)
    p50, p99 = stats.percentile(50), stats.percentile(99)
    print(
        f"products/s: {listed / max(elapsed, 1e-9):.1f} (worker start to last list; publish took "
        f"{first - started:.1f} s of it)"
    )
    if p50 is not None and p99 is not None:
        print(
            f"freshness (event produced -> list emitted): p50 {p50:.2f} s, p99 {p99:.2f} s "
            "(the whole catalog arrives as one burst)"
        )
    example = shown[0] if shown else (subset[0][0] if subset else SHOWN_PRODUCTS[0])
    print("\n== inspect what the demo built (its own namespace: run the export first, in the same shell)")
    for line in inspect_commands(settings, base, example):
        print(line)
    print(f"\nthe stack keeps running: `{program()} dev down` stops it")
    return 0 if listed >= expected else 1


def demo_upgrade(settings: Settings, model: str) -> bool:
    """`simstream model upgrade`, then `promote` (gate included), while the demo's worker runs; True
    when promoted (a refusal by the gate is an outcome to show, not a failure of the demo)."""
    from simstream.model_command import ModelCommand
    from simstream.model_gate import format_gate

    if model == "int8":
        folder = Path(settings.dev_state_dir).resolve() / "models" / "all-MiniLM-L6-v2-int8"
        if not folder.is_dir():
            from simstream.core.quantized import quantized_default_model

            quantized_default_model(folder)
        model = str(folder)
    print(f"\n== changing the model to {model} while the worker runs (`{program()} model ...`)")
    command = ModelCommand(settings, make_redis_client(settings))
    report = command.upgrade(model)
    print(
        f"   upgrade: generation {report.shadow.number} {report.shadow.model_id}, backfill of "
        f"{report.backfill.done} products in {report.backfill.seconds:.1f} s"
    )
    swap = command.promote(timeout_s=600)
    assert swap.gate is not None
    print(format_gate(swap.gate))
    if not swap.swapped:
        print(f"   not promoted: the gate refused it (`{program()} model promote --force` promotes anyway)")
        return False
    print(f"   promoted: alias swapped in {swap.swap_s:.2f} s, every list rebuilt in {swap.rebuild_s or 0:.1f} s")
    print(f"   `{program()} model rollback` brings the previous model back, `{program()} model cleanup` drops it")
    return True


def program() -> str:
    """This installation's ``simstream`` as the user types it: relative to the current folder when inside it."""
    path = Path(sys.executable).parent / "simstream"
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def inspect_commands(settings: Settings, base: Settings, product_id: str) -> list[str]:
    """Shell lines that inspect the demo's results: an ``export`` of every setting the demo changed
    from ``base`` (the user's environment), then ``similar``, ``search``, ``verify`` and the Redis shell."""
    changed = [name for name in Settings.model_fields if getattr(settings, name) != getattr(base, name)]
    exports = " ".join(f"SIMSTREAM_{name.upper()}={shlex.quote(str(getattr(settings, name)))}" for name in changed)
    simstream = shlex.quote(program())
    similar_key = shlex.quote(f"{settings.redis_prefix}similar:{product_id}")
    return [
        *([f"export {exports}"] if exports else []),
        f"{simstream} similar {shlex.quote(product_id)}",
        f"{simstream} search {shlex.quote(SEARCH_EXAMPLE)} -k 5",
        f"{simstream} verify",
        f"{simstream} redis-shell GET {similar_key}",
        f"{simstream} redis-shell",
    ]


def show_lists(settings: Settings) -> list[str]:
    """Prints the stored lists of the SHOWN_PRODUCTS that have one; returns their ids."""
    client = make_redis_client(settings)
    settings = live_settings(settings, client)  # the live model's product hashes (`simstream model`)
    lists = ListStore.from_settings(settings, client).read_lists(list(SHOWN_PRODUCTS))
    store = RedisVectorStore.from_settings(settings, client)
    for product_id, stored in lists.items():
        top = stored.items[:5]
        meta = store.metadata([product_id, *(n.product_id for n in top)])
        print(f"\n{product_id}: {printable(meta.get(product_id, {}).get('title', '?'))}")
        for item in top:
            title = printable(meta.get(item.product_id, {}).get("title", "?"))
            print(f"   {item.score:.3f}  {printable(item.product_id):14} {title}")
    print()
    return list(lists)
