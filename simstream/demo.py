"""`make demo`: the main job on the local stack, end to end, on the bundled Abt-Buy catalog.

Starts the stack, resets the demo's own namespace (its topics, index and keys; nothing else),
runs the worker, publishes the 2,173 real offers while it runs, waits until every product has an
emitted list, then prints a few lists, products/s and the freshness percentiles.
"""

from __future__ import annotations

import contextlib
import threading
import time
from importlib.resources import files
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from simstream.consumers.stats import WorkerStats
from simstream.consumers.worker import build_worker
from simstream.core.list_store import ListStore
from simstream.core.namespace import clear_redis_namespace
from simstream.core.redis_client import make_redis_client
from simstream.core.vector_store import RedisVectorStore
from simstream.devstack import stack
from simstream.producers.catalog import read_catalog
from simstream.producers.publish import publish_file
from simstream.schemas.settings import Settings, kafka_client_config

SHOWN_PRODUCTS = ("abt-552", "abt-580", "buy-10011646", "abt-38477", "buy-10140760")
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


def run_demo(base: Settings) -> int:
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
    expected = sum(1 for _ in read_catalog(abt)) + sum(1 for _ in read_catalog(buy))

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
    for path, prefix in ((abt, "abt-"), (buy, "buy-")):
        report = publish_file(settings, path, id_prefix=prefix)
        print(f"   {path.name}: sent={report.sent} failed={report.failed} invalid={report.invalid}")
    first = time.monotonic()
    while len(stats.emitted_ids) < expected and thread.is_alive() and time.monotonic() - started < TIMEOUT_S:
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    done.set()
    thread.join(60)

    listed = len(stats.emitted_ids)
    print(f"== {listed}/{expected} products embedded with an emitted list in {elapsed:.1f} s")
    show_lists(settings)
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
    print("the stack keeps running: `.venv/bin/simstream dev down` stops it")
    return 0 if listed >= expected else 1


def show_lists(settings: Settings) -> None:
    client = make_redis_client(settings)
    lists = ListStore.from_settings(settings, client).read_lists(list(SHOWN_PRODUCTS))
    store = RedisVectorStore.from_settings(settings, client)
    for product_id, stored in lists.items():
        top = stored.items[:5]
        meta = store.metadata([product_id, *(n.product_id for n in top)])
        print(f"\n{product_id}: {meta.get(product_id, {}).get('title', '?')}")
        for item in top:
            print(f"   {item.score:.3f}  {item.product_id:14} {meta.get(item.product_id, {}).get('title', '?')}")
    print()
