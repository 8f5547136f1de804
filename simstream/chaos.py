"""``simstream chaos``: real worker processes on a private stack, broken on purpose, then audited.

Each scenario streams real Abt-Buy products (the first N, ids ``abt-``/``buy-``; the last slice also
updates a tenth of them to version 2) through ``python -m simstream run`` subprocesses while it
SIGKILLs workers (kill), stops Redis for a while (redis), restarts the Kafka broker (broker), SIGKILLs
one node of a three-node Kafka cluster and starts it again (broker3), grows the group from 1 to 3
workers and back (scale), interleaves fuzzed bad records (fuzz), restarts a Redis that has the ACL
user on, as whom the worker logs in (acl-restart), or makes Redis lose acknowledged writes that the
worker already committed to Kafka: SIGKILLs of Redis (AOF, ``appendfsync everysec``), each followed by
cutting the AOF back to where it ended before the slice in flight, as an OS crash drops what was not
fsynced yet (redis-kill; a SIGKILL alone loses nothing, the kernel keeps what Redis wrote), or a
restart on an RDB snapshot taken mid-stream, after more creates, updates and deletes (redis-restore).
Those two count, per fault, the input records whose effects Redis lost (``redis_lost_records``, from
the applied offsets the worker keeps in Redis), which the worker must notice and replay. ``steady`` is
the same stream without faults, the throughput baseline. Every batch does its list work, as on a live
stream; with ``--first-load`` the stream fills the empty index as a first load instead (lists built in
bulk once it is drained: the faults then hit the deferred writes and the bulk pass). Afterwards it
counts what a reader sees:

- ``lost``: published products not stored at their latest version, or without a current list in
  Redis, or whose last committed output record is missing or older;
- ``duplicated``: committed list records beyond one per (product, list_version);
- ``dead_lettered``: committed records of the dead-letter topic;
- ``verify_ok``: ``simstream verify`` (exact brute force, output topic) within its default thresholds;
- ``stall_s``: the longest time between consecutive committed output records (by create time), the
  stall a fault causes downstream.

The stack (Kafka + Redis with AOF, so Redis data survives its restart) lives in a temporary folder on
free ports and is stopped at the end (broker3 gets its own, with a three-node Kafka cluster); every
scenario run has its own topics, group, index and prefix. acl-restart uses a second Redis of the stack
(AOF on, the ACL user on, the default user off), started the first time it is needed.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
import redis
from confluent_kafka import Producer
from pydantic import SecretStr

from simstream.consumers.group_lag import group_lag
from simstream.core.audit import Thresholds, threshold_failures
from simstream.core.errors import SimstreamError
from simstream.core.list_store import ListStore
from simstream.core.namespace import namespace_fields
from simstream.core.redis_client import make_redis_client
from simstream.core.redis_keys import RedisKeys
from simstream.core.vector_store import RedisVectorStore
from simstream.devstack import stack
from simstream.devstack.layout import StackLayout
from simstream.devstack.ports import free_ports
from simstream.devstack.processes import is_alive
from simstream.producers.catalog import read_catalog
from simstream.producers.publish import product_event
from simstream.producers.sink import WATCHDOG_EXIT_CODE
from simstream.producers.topics import ensure_topics, partitions_led
from simstream.schemas.codec import DecodeFailure, decode_event, encode_event
from simstream.schemas.events import ProductEvent
from simstream.schemas.settings import Settings, kafka_client_config
from simstream.schemas.similar_items import SimilarItems
from simstream.topic_records import duplicated_lists, longest_gap_s, read_all

Scenario = Literal[
    "steady", "kill", "redis", "broker", "broker3", "scale", "fuzz", "acl-restart", "redis-kill", "redis-restore"
]
Mode = Literal["eos", "alo"]
SCENARIOS: tuple[Scenario, ...] = (
    "steady",
    "kill",
    "redis",
    "broker",
    "broker3",
    "scale",
    "fuzz",
    "acl-restart",
    "redis-kill",
    "redis-restore",
)
# Kafka nodes of the stack a scenario runs on (1 when not listed).
KAFKA_NODES: dict[Scenario, int] = {"broker3": 3}
ACL_SCENARIOS: frozenset[Scenario] = frozenset({"acl-restart"})  # run against the stack's ACL Redis
ACL_USER = "simstream-chaos"
# Redis's AOF folder and manifest under its data dir (appenddirname, appendfilename: the defaults).
AOF_DIR = "appendonlydir"
AOF_MANIFEST = "appendonly.aof.manifest"
Progress = Callable[[str], None]
SESSION_TIMEOUT_MS = 10_000
Record = tuple[bytes | None, bytes | None]

# Settings the worker subprocesses get through SIMSTREAM_* variables.
WORKER_FIELDS = (
    "kafka_bootstrap",
    "redis_url",
    "input_topic",
    "output_topic",
    "dlq_topic",
    "group_id",
    "redis_prefix",
    "index_name",
    "index_alias",
    "batch_max_wait_ms",
    "exactly_once",
    "vector_algorithm",
    "first_load_bulk",
    "log_level",
)


class ChaosError(SimstreamError):
    """A scenario could not be carried out (a wait ran out, a worker died where it must not)."""


@dataclass(frozen=True, slots=True)
class ChaosOptions:
    products: int = 2000
    kills: int = 5
    outage_s: float = 10.0
    bad_records: int = 1000
    update_fraction: float = 0.1  # products updated to version 2 in the last slice
    redis_kills: int = 3  # redis-kill: SIGKILLs of Redis during the stream
    seed: int = 0
    timeout_s: float = 900.0  # bound of every wait for progress
    # The stream into the empty index as a first load (its lists built in bulk once the backlog is
    # drained); off, every batch does its list work as a live stream does, and the faults hit that.
    first_load: bool = False


@dataclass(slots=True)
class ScenarioResult:
    scenario: str
    mode: str
    published: int = 0  # distinct products (at their latest version)
    processed: int = 0  # of them: stored at the latest version with a current list
    dead_lettered: int = 0
    bad_records: int = 0
    lost: int = 0
    duplicated: int = 0
    verify_ok: bool = False
    verify_failures: list[str] = field(default_factory=list)
    # When verify fails: its worst lists and examples of each kind of difference, to tell why.
    verify_details: list[str] = field(default_factory=list)
    seconds: float = 0.0
    products_per_s: float = 0.0
    worker_restarts: int = 0
    worker_exit_codes: list[int] = field(default_factory=list)
    stall_s: float = 0.0  # longest time between consecutive committed output records
    # redis-kill, redis-restore: input records whose acknowledged effects Redis lost, per crash or restore
    redis_lost_records: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        clean = self.lost == 0 and self.verify_ok and self.dead_lettered == self.bad_records
        return clean and (self.mode != "eos" or self.duplicated == 0)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


# --- the private stack -------------------------------------------------------------------------------


class ChaosStack:
    """Kafka (one node, or a cluster of ``kafka_nodes``) + Redis (AOF on) of one chaos run, in ``root``, on
    free ports; restartable per service, and per Kafka node."""

    def __init__(self, root: Path, progress: Progress, kafka_nodes: int = 1) -> None:
        redis_port, kafka_port, controller_port, *peers = free_ports(1 + 2 * kafka_nodes)
        self.settings = Settings(
            dev_state_dir=root / "stack",
            dev_kafka_brokers=kafka_nodes,
            dev_kafka_port=kafka_port,
            dev_kafka_controller_port=controller_port,
            dev_kafka_peer_ports=peers[: kafka_nodes - 1],
            dev_kafka_peer_controller_ports=peers[kafka_nodes - 1 :],
            dev_redis_port=redis_port,
            dev_redis_aof=True,  # Redis data must survive the redis scenario's restart
            dev_redis_appendfsync="everysec",  # redis-kill: the policy whose loss window it plays out
            dev_stop_timeout_s=30.0,
        )
        self.root = root
        self.progress = progress
        self.acl_settings: Settings | None = None  # the ACL Redis, once a scenario asked for it

    def up(self, services: Sequence[stack.ServiceName] = stack.ALL_SERVICES) -> None:
        stack.up(self.settings, progress=self.progress, services=services)

    def down(self, services: Sequence[stack.ServiceName] = stack.ALL_SERVICES) -> None:
        stack.down(self.settings, progress=self.progress, services=services)

    def endpoints(self) -> tuple[str, str]:
        kafka, redis = stack.status(self.settings)
        return kafka.endpoint, redis.endpoint

    def kill_kafka_node(self, node_id: int) -> None:
        """SIGKILL one node of the cluster: no controlled shutdown, its leaderships end with it."""
        (kafka,) = stack.status(self.settings, services=["kafka"])
        pid = next(member.pid for member in kafka.members if member.name == f"kafka-{node_id}")
        if pid is None:
            raise ChaosError(f"kafka node {node_id} is not running")
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not is_alive(pid), 30, f"kafka node {node_id} to die")

    def acl_redis(self) -> Settings:
        """The client settings of the second Redis (the ACL user's name and password), started on first use."""
        if self.acl_settings is None:
            (port,) = free_ports(1)
            self.acl_settings = Settings(
                dev_state_dir=self.root / "stack-acl",
                dev_redis_port=port,
                dev_redis_aof=True,
                dev_stop_timeout_s=30.0,
                dev_redis_acl_user=ACL_USER,
                dev_redis_acl_password=SecretStr(secrets.token_urlsafe(24)),
            )
        self.acl_up()
        (redis,) = stack.status(self.acl_settings, services=["redis"])
        return Settings(
            redis_url=redis.endpoint,
            redis_username=self.acl_settings.dev_redis_acl_user,
            redis_password=self.acl_settings.dev_redis_acl_password,
        )

    def acl_up(self) -> None:
        if self.acl_settings is not None:
            stack.up(self.acl_settings, progress=self.progress, services=["redis"])

    def acl_down(self) -> None:
        if self.acl_settings is not None:
            stack.down(self.acl_settings, progress=self.progress, services=["redis"])

    def acl_log_lines(self, needle: str) -> int:
        """Lines of the ACL Redis's log that hold ``needle``."""
        if self.acl_settings is None:
            return 0
        log = StackLayout.from_settings(self.acl_settings).log_file("redis")
        with log.open(encoding="utf-8", errors="replace") as lines:
            return sum(1 for line in lines if needle in line)

    # Redis losing acknowledged writes (redis-kill, redis-restore)
    def redis_client(self) -> redis.Redis:
        return make_redis_client(Settings(redis_url=self.endpoints()[1]))

    def kill_redis(self) -> None:
        (status,) = stack.status(self.settings, services=["redis"])
        pid = status.pid
        if pid is None:
            raise ChaosError("redis is not running")
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not is_alive(pid), 30, "redis to die")

    def aof_mark(self) -> AofMark:
        """Where the AOF ends now. Automatic rewrites are turned off first, so Redis keeps appending to
        the same file until it is killed (a rewrite would start a new one)."""
        client = self.redis_client()
        client.config_set("auto-aof-rewrite-percentage", 0)

        def no_rewrite() -> bool:
            info = client.info("persistence")
            return not int(info["aof_rewrite_in_progress"]) and not int(info["aof_rewrite_scheduled"])

        wait_until(no_rewrite, 120, "an AOF rewrite to end")
        manifest = (self._aof_dir() / AOF_MANIFEST).read_text()
        path = self._aof_dir() / incremental_aof(manifest)
        return AofMark(manifest=manifest, path=path, length=path.stat().st_size)

    def cut_aof(self, mark: AofMark) -> None:
        """Of a killed Redis: drop what its AOF got after ``mark``, as an OS crash drops what was not
        fsynced yet (up to about a second with everysec). A prefix of the log is an earlier state; a
        command cut in two at the end is dropped on load (aof-load-truncated, the default)."""
        if (self._aof_dir() / AOF_MANIFEST).read_text() != mark.manifest:
            raise ChaosError("the AOF was rewritten after its mark: cannot cut it back")
        os.truncate(mark.path, mark.length)

    def snapshot_redis(self, destination: Path) -> None:
        """BGSAVE (once a running AOF rewrite allows) and a copy of the RDB it wrote: Redis as of the fork."""
        client = self.redis_client()
        saves = int(client.info("persistence")["rdb_saves"])
        client.bgsave(schedule=True)

        def saved() -> bool:
            info = client.info("persistence")
            return int(info["rdb_saves"]) > saves and not int(info["rdb_bgsave_in_progress"])

        wait_until(saved, 120, "BGSAVE to finish")
        status = client.info("persistence")["rdb_last_bgsave_status"]
        if status != "ok":
            raise ChaosError(f"BGSAVE failed: {status}")
        dbfilename = str(client.config_get("dbfilename")["dbfilename"])
        shutil.copyfile(StackLayout.from_settings(self.settings).redis_data_dir / dbfilename, destination)

    def restore_redis(self, snapshot: Path) -> None:
        """Stop Redis and start it on an older RDB snapshot. With AOF on, Redis loads its AOF folder and
        never dump.rdb, so the folder is replaced by one whose only file is the snapshot as its base."""
        self.down(["redis"])
        folder = self._aof_dir()
        shutil.rmtree(folder)
        folder.mkdir()
        base = "appendonly.aof.1.base.rdb"
        shutil.copyfile(snapshot, folder / base)
        (folder / AOF_MANIFEST).write_text(f"file {base} seq 1 type b\n", encoding="ascii")
        self.up(["redis"])

    def _aof_dir(self) -> Path:
        return StackLayout.from_settings(self.settings).redis_data_dir / AOF_DIR

    def close(self) -> None:
        self.down()
        self.acl_down()


@dataclass(frozen=True, slots=True)
class AofMark:
    manifest: str  # the manifest then: a rewrite since changes it
    path: Path  # the incremental file Redis appends to
    length: int


def incremental_aof(manifest: str) -> str:
    """The name of the last incremental file in an AOF manifest (lines ``file NAME seq N type i ...``)."""
    names = []
    for line in manifest.splitlines():
        words = line.split()
        entry = dict(zip(words[::2], words[1::2], strict=False))
        if entry.get("type") == "i" and "file" in entry:
            names.append(entry["file"])
    if not names:
        raise ChaosError("the AOF manifest names no incremental file")
    return names[-1]


@contextmanager
def chaos_stack(progress: Progress, root: Path | None = None, kafka_nodes: int = 1) -> Iterator[ChaosStack]:
    with tempfile.TemporaryDirectory(prefix="simstream-chaos-") as tmp:
        started = ChaosStack(root or Path(tmp), progress, kafka_nodes)
        try:
            started.up()
            yield started
        finally:
            started.close()


# --- worker subprocesses -----------------------------------------------------------------------------


class WorkerProcess:
    """``python -m simstream run`` with the scenario's settings; its log in the run folder."""

    def __init__(self, settings: Settings, log_path: Path, slot: str) -> None:
        self.slot = slot
        self.metrics_port = free_ports(1)[0]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "SIMSTREAM_WORKER_ID": slot}
        for name in WORKER_FIELDS:
            env[f"SIMSTREAM_{name.upper()}"] = str(getattr(settings, name))
        if settings.redis_username is not None:
            env["SIMSTREAM_REDIS_USERNAME"] = settings.redis_username
        if settings.redis_password is not None:  # through the environment (owner-only), never argv
            env["SIMSTREAM_REDIS_PASSWORD"] = settings.redis_password.get_secret_value()
        # A SIGKILLed member holds its partitions until its session times out (45 s by default).
        env["SIMSTREAM_KAFKA_EXTRA"] = orjson.dumps({"session.timeout.ms": str(SESSION_TIMEOUT_MS)}).decode()
        env["SIMSTREAM_METRICS_PORT"] = str(self.metrics_port)
        env["SIMSTREAM_METRICS_HOST"] = "127.0.0.1"
        self._log = log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "simstream", "run"], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def alive(self) -> bool:
        return self._process.poll() is None

    @property
    def pid(self) -> int:
        return self._process.pid

    def exit_code(self) -> int | None:
        return self._process.poll()

    def wait_loaded(self, timeout_s: float) -> None:
        """Until /healthz answers (the model is loaded, the consumer about to subscribe)."""
        url = f"http://127.0.0.1:{self.metrics_port}/healthz"

        def answers() -> bool:
            if not self.alive():
                raise ChaosError(f"worker exited with {self._process.returncode} while starting")
            with suppress(OSError), urllib.request.urlopen(url, timeout=2) as reply:
                return int(reply.status) == 200
            return False

        wait_until(answers, timeout_s, "a worker to load its model")

    def kill(self) -> int:
        self._process.send_signal(signal.SIGKILL)
        return self._finish(30)

    def terminate(self, timeout_s: float = 120.0) -> int:
        if self.alive():
            self._process.send_signal(signal.SIGTERM)
        return self._finish(timeout_s)

    def _finish(self, timeout_s: float) -> int:
        try:
            code = self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = self._process.wait(30)
        self._log.close()
        return code


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.25) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise ChaosError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


# --- the input stream ---------------------------------------------------------------------------------


def abt_buy_products(count: int) -> list[tuple[str, dict[str, Any]]]:
    from simstream.demo import sample_catalog

    abt, buy = sample_catalog()
    rows = [*read_catalog(abt, id_prefix="abt-"), *read_catalog(buy, id_prefix="buy-")]
    return [(row.product_id, row.product) for row in rows[:count]]


def fuzzed_bad_records(count: int, seed: int, max_bytes: int) -> list[Record]:
    """``count`` records that the worker must dead-letter: raw bytes, broken JSON, fields of the wrong type.

    Generated with hypothesis strategies (a dev dependency: imported only here); every candidate is
    run through the real decoder and kept only if it fails, so the expected dead-letter count is exact.
    """
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import seed as hypothesis_seed
    from hypothesis import settings as hypothesis_settings
    from hypothesis import strategies as st

    good = orjson.loads(encode_event(product_event("fuzz", 1, {"title": "Fuzz"})))
    wrong = st.one_of(
        st.integers(-(2**63), 2**63 - 1),
        st.text(max_size=20),
        st.none(),
        st.booleans(),
        st.lists(st.integers(0, 9), max_size=3),
    )
    fields = st.sampled_from(["schema", "type", "event_id", "product_id", "version", "occurred_at", "product"])

    def mutated(name: str, value: object) -> bytes:
        return orjson.dumps({**good, name: value})

    values = st.one_of(
        st.binary(max_size=256),
        st.text(max_size=200).map(lambda t: ("{" + t).encode()),
        st.builds(mutated, fields, wrong),
    )
    found: list[bytes] = []

    @hypothesis_seed(seed)
    @hypothesis_settings(
        max_examples=max(10, count),
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(values)
    def collect(value: bytes) -> None:
        found.append(value)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        collect()
    records: list[Record] = []
    for index, value in enumerate(found * (count // max(1, len(found)) + 2)):
        key = f"fuzz-{index}".encode()
        if isinstance(decode_event(key, value, max_bytes=max_bytes), DecodeFailure):
            records.append((key, value))
        if len(records) == count:
            break
    if len(records) < count:
        raise ChaosError(f"only {len(records)} of {count} fuzzed records are invalid")
    return records


def publish_records(settings: Settings, records: Sequence[Record]) -> None:
    producer = Producer({**kafka_client_config(settings), "enable.idempotence": True, "linger.ms": 5})
    for key, value in records:
        while True:
            try:
                producer.produce(settings.input_topic, key=key, value=value)
                producer.poll(0)
                break
            except BufferError:
                producer.poll(0.2)
    left = producer.flush(120)
    if left:
        raise ChaosError(f"{left} input records not delivered")


# --- one scenario run ----------------------------------------------------------------------------------


class ScenarioRun:
    """One scenario in one mode: its names, its workers, its stream, and the audit at the end."""

    def __init__(self, chaos: ChaosStack, scenario: Scenario, mode: Mode, options: ChaosOptions) -> None:
        kafka, redis_url = chaos.endpoints()
        credentials: dict[str, Any] = {}
        if scenario in ACL_SCENARIOS:
            acl = chaos.acl_redis()
            redis_url = acl.redis_url
            credentials = {"redis_username": acl.redis_username, "redis_password": acl.redis_password}
        name = f"chaos-{scenario}-{mode}-{uuid.uuid4().hex[:6]}"
        self.settings = Settings(
            kafka_bootstrap=kafka,
            redis_url=redis_url,
            **credentials,
            **namespace_fields(name),
            batch_max_wait_ms=100,
            exactly_once=mode == "eos",
            vector_algorithm="FLAT",  # exact KNN: verify's brute force must agree
            first_load_bulk=options.first_load,
        )
        self.chaos = chaos
        self.options = options
        self.random = random.Random(options.seed)
        self.result = ScenarioResult(scenario=scenario, mode=mode)
        self.latest: dict[str, int] = {}
        self.workers: list[WorkerProcess] = []
        self._logs = chaos.root / "logs"
        self._logs.mkdir(parents=True, exist_ok=True)
        self._name = name
        self._started = 0.0
        self._spawned = 0
        self.records_published = 0  # input records, bad ones included
        ensure_topics(self.settings)

    # workers
    def start_worker(self, *, wait: bool = True, slot: str | None = None) -> WorkerProcess:
        """A worker process; a restart takes the slot (the stable worker_id) of the one it replaces."""
        self._spawned += 1
        slot = slot or f"slot{self._spawned}"
        worker = WorkerProcess(self.settings, self._logs / f"{self._name}-w{self._spawned}.log", slot)
        self.workers.append(worker)
        if wait:
            worker.wait_loaded(self.options.timeout_s)
        return worker

    def kill_and_restart(self, worker: WorkerProcess) -> WorkerProcess:
        self.workers.remove(worker)
        self.result.worker_exit_codes.append(worker.kill())
        self.result.worker_restarts += 1
        return self.start_worker(wait=False, slot=worker.slot)

    def stop_worker(self, worker: WorkerProcess) -> None:
        self.workers.remove(worker)
        code = worker.terminate()
        self.result.worker_exit_codes.append(code)
        if code != 0:
            raise ChaosError(f"a worker exited with {code} on SIGTERM; see {self._logs}")

    def require_alive(self) -> None:
        dead = [w for w in self.workers if not w.alive()]
        if dead:
            raise ChaosError(f"{len(dead)} worker(s) died; see the logs in {self._logs}")

    # the stream
    def publish(self, events: Sequence[ProductEvent], extra: Sequence[Record] = ()) -> None:
        if not self._started:
            self._started = time.monotonic()
        records: list[Record] = [(e.product_id.encode(), encode_event(e)) for e in events]
        if extra:
            # Interleave: bad records scattered among the good ones, in a seeded order.
            records = [*records, *extra]
            self.random.shuffle(records)
        publish_records(self.settings, records)
        self.records_published += len(records)
        for e in events:
            self.latest[e.product_id] = max(self.latest.get(e.product_id, 0), e.version)

    def slices(self, count: int) -> list[list[ProductEvent]]:
        """The products as ``count`` slices of version-1 events; the last also updates some to version 2."""
        products = abt_buy_products(self.options.products)
        size = max(1, -(-len(products) // count))
        parts = [
            [product_event(pid, 1, product) for pid, product in products[i : i + size]]
            for i in range(0, len(products), size)
        ]
        while len(parts) < count:
            parts.append([])
        updated = self.random.sample(products, int(len(products) * self.options.update_fraction))
        parts[-1] += [product_event(pid, 2, {**product, "price": 1.0 + i}) for i, (pid, product) in enumerate(updated)]
        return parts

    def stored(self) -> int:
        """Products stored so far (any version); 0 while Redis is away."""
        try:
            return RedisVectorStore.from_settings(self.settings).count()
        except SimstreamError:
            return 0

    def catalog_sequence(self) -> int:
        """Product writes and deletes Redis has applied (``catalog:seq``)."""
        return RedisVectorStore.from_settings(self.settings).catalog_stamp()

    def applied_records(self) -> int:
        """Input records whose effects Redis holds: the worker's applied offsets, summed over partitions
        (the input topic has no transaction markers, so offsets count records)."""
        client = make_redis_client(self.settings)
        key = RedisKeys(self.settings.redis_prefix).applied_offsets(self.settings.group_id)
        return sum(int(value) for value in client.hvals(key))

    def wait_applied(self, at_least: int) -> None:
        def reached() -> bool:
            self.require_alive()
            return self.applied_records() >= at_least

        wait_until(reached, self.options.timeout_s, f"{at_least} input records applied in Redis")

    def wait_stored(self, at_least: int) -> None:
        def reached() -> bool:
            self.require_alive()
            return self.stored() >= at_least

        wait_until(reached, self.options.timeout_s, f"{at_least} products stored")

    def restart_watchdog_exits(self) -> None:
        """Act as the supervisor would: a worker that ended itself with the watchdog's exit code (a
        transactional call stuck in librdkafka) is started again; any other death is a failure."""
        for worker in [w for w in self.workers if not w.alive()]:
            if worker.exit_code() != WATCHDOG_EXIT_CODE:
                continue
            self.workers.remove(worker)
            self.result.worker_exit_codes.append(WATCHDOG_EXIT_CODE)
            self.result.worker_restarts += 1
            self.start_worker(wait=False, slot=worker.slot)

    def wait_done(self) -> None:
        """Every product at its latest version with a current list, and every input offset committed."""

        def done() -> bool:
            self.restart_watchdog_exits()
            self.require_alive()
            return self._processed() == len(self.latest) and group_lag(self.settings) == 0

        try:
            wait_until(done, self.options.timeout_s, "every product to be processed", interval_s=0.5)
        except ChaosError as exc:
            raise ChaosError(
                f"{exc}; lag {group_lag(self.settings)}; not done: {(self._unprocessed() or [])[:5]}"
            ) from exc
        self.result.seconds = time.monotonic() - self._started

    def _processed(self) -> int:
        unprocessed = self._unprocessed()
        return 0 if unprocessed is None else len(self.latest) - len(unprocessed)

    def _unprocessed(self) -> list[str] | None:
        """Each product not yet at its latest version with a list computed for it, and why (None while
        Redis does not answer)."""
        try:
            client = make_redis_client(self.settings)
            ids = sorted(self.latest)
            states = RedisVectorStore.from_settings(self.settings, client).states(ids)
            lists = ListStore.from_settings(self.settings, client).read_lists(ids)
        except SimstreamError:
            return None
        missing = []
        for pid in ids:
            state, stored = states.get(pid), lists.get(pid)
            if state is None or not state.exists or state.version != self.latest[pid]:
                missing.append(f"{pid}: stored {state}, published version {self.latest[pid]}")
            elif stored is None or stored.source_version < self.latest[pid]:
                label = None if stored is None else (stored.list_version, stored.source_version)
                missing.append(f"{pid}: list (list_version, source_version) {label}, version {self.latest[pid]}")
        return missing

    # the audit
    def finish(self) -> ScenarioResult:
        for worker in list(self.workers):
            self.stop_worker(worker)
        from simstream.verify import run_verify

        result = self.result
        result.published = len(self.latest)
        result.processed = self._processed()
        committed = read_all(self.settings, self.settings.output_topic)
        last: dict[str, bytes | None] = {}
        for record in committed:
            if record.key is not None:
                last[record.key.decode()] = record.value
        output_ok = sum(
            1
            for pid, version in self.latest.items()
            if (value := last.get(pid)) is not None
            and SimilarItems.model_validate_json(value).source_version >= version
        )
        result.lost = result.published - min(result.processed, output_ok)
        result.duplicated = duplicated_lists(committed)
        result.stall_s = longest_gap_s(committed)
        result.dead_lettered = len(read_all(self.settings, self.settings.dlq_topic))
        report = run_verify(self.settings)
        result.verify_failures = threshold_failures(report, Thresholds())
        result.verify_ok = not result.verify_failures
        if result.verify_failures:
            worst = ", ".join(f"{pid} {value:.2f}" for pid, value in report.lowest_overlap)
            result.verify_details = [f"lowest overlap: {worst}"] + [
                f"{kind}: {example}" for kind, found in report.examples.items() for example in found
            ]
        result.products_per_s = result.published / result.seconds if result.seconds else 0.0
        return result

    def abandon(self) -> None:
        for worker in self.workers:
            if worker.alive():
                worker.kill()


# --- the scenarios --------------------------------------------------------------------------------------


def run_steady(run: ScenarioRun) -> None:
    run.start_worker()
    (events,) = run.slices(1)
    run.publish(events)
    run.wait_done()


def run_kill(run: ScenarioRun) -> None:
    worker = run.start_worker()
    parts = run.slices(run.options.kills + 1)
    for part in parts[:-1]:
        before = run.stored()
        run.publish(part)
        # A random moment inside this slice's processing: somewhere between 10 % and 90 % of it stored.
        run.wait_stored(before + max(1, int(len(part) * run.random.uniform(0.1, 0.9))))
        worker = run.kill_and_restart(worker)
    run.publish(parts[-1])
    run.wait_done()


def run_redis_outage(run: ScenarioRun) -> None:
    run.start_worker()
    first, second = run.slices(2)
    run.publish(first)
    run.wait_stored(max(1, len(first) // 3))
    run.chaos.down(["redis"])
    run.publish(second)  # Kafka is up: the stream goes on while Redis is away
    deadline = time.monotonic() + run.options.outage_s
    while time.monotonic() < deadline:
        run.require_alive()
        time.sleep(0.5)
    run.chaos.up(["redis"])
    run.wait_done()


def run_broker_restart(run: ScenarioRun) -> None:
    run.start_worker()
    first, second = run.slices(2)
    run.publish(first)
    run.wait_stored(max(1, len(first) // 3))
    run.chaos.down(["kafka"])
    run.require_alive()
    run.chaos.up(["kafka"])
    run.publish(second)
    run.wait_done()


def run_broker_node_kill(run: ScenarioRun) -> None:
    """SIGKILL the Kafka node leading most of the run's partitions mid-stream, publish on with two of
    three, and start it again once the stream has moved on without it."""
    run.start_worker()
    first, second = run.slices(2)
    run.publish(first)
    run.wait_stored(max(1, len(first) // 3))
    node = busiest_leader(run.settings)
    run.chaos.kill_kafka_node(node)
    run.chaos.progress(f"chaos: SIGKILLed kafka node {node}")
    run.publish(second)  # acks=all with min.insync.replicas 2: accepted by the two nodes left
    new_products = sum(1 for event in second if event.version == 1)

    def moved_on() -> bool:
        # Progress past the first slice proves the two nodes left serve the stream on their own.
        run.restart_watchdog_exits()
        run.require_alive()
        return run.stored() >= len(first) + max(1, new_products // 2)

    wait_until(moved_on, run.options.timeout_s, "the stream to go on with one Kafka node down")
    run.chaos.up(["kafka"])  # starts only the killed node; it catches up as a follower
    run.wait_done()


def busiest_leader(settings: Settings) -> int:
    """The node leading most partitions of the input and output topics (the lowest id on a tie)."""
    led = partitions_led(settings, [settings.input_topic, settings.output_topic])
    return min(led, key=lambda node: (-led[node], node))


def run_scale(run: ScenarioRun) -> None:
    run.start_worker()
    first, second, third = run.slices(3)
    run.publish(first)
    run.wait_stored(max(1, len(first) // 3))
    extra = [run.start_worker(wait=False), run.start_worker(wait=False)]
    run.publish(second)
    for worker in extra:
        worker.wait_loaded(run.options.timeout_s)
    run.wait_stored(len(first) + len(second) // 2)
    for worker in extra:
        run.stop_worker(worker)
    run.publish(third)
    run.wait_done()


def run_fuzz(run: ScenarioRun) -> None:
    run.start_worker()
    (events,) = run.slices(1)
    bad = fuzzed_bad_records(run.options.bad_records, run.options.seed, run.settings.max_event_bytes)
    run.result.bad_records = len(bad)
    run.publish(events, extra=bad)
    run.wait_done()


def run_acl_restart(run: ScenarioRun) -> None:
    """``dev down`` and ``dev up`` of the ACL Redis mid-stream: the restart must replay its whole AOF
    (scripted writes are logged as MULTI/EXEC, which Redis checks against the default user's rules)."""
    run.start_worker()
    first, second = run.slices(2)
    run.publish(first)
    run.wait_stored(max(1, len(first) // 3))
    run.publish(second)
    written = run.catalog_sequence()
    run.chaos.acl_down()
    run.chaos.acl_up()
    replayed = run.catalog_sequence()
    if replayed < written:
        raise ChaosError(f"the restart lost acknowledged writes: catalog:seq {written} before, {replayed} after")
    refused = run.chaos.acl_log_lines("NOPERM")
    if refused:
        raise ChaosError(f"redis.log has {refused} NOPERM line(s): the AOF was not replayed completely")
    run.wait_done()


def run_redis_kill(run: ScenarioRun) -> None:
    """SIGKILL Redis (AOF with appendfsync everysec) mid-stream, ``redis_kills`` times, each time as an
    OS crash would leave it: the AOF cut back to where it ended before the slice in flight was published.
    A SIGKILL alone loses nothing (the kernel keeps what Redis wrote), and everysec loses about a second
    in an OS crash; the cut loses more, deterministically. The worker keeps running; it must notice that
    Redis is behind what it committed and replay."""
    fsync = run.chaos.redis_client().config_get("appendfsync")["appendfsync"]
    if fsync != "everysec":
        raise ChaosError(f"redis-kill needs appendfsync everysec, the stack's Redis has {fsync}")
    run.start_worker()
    parts = run.slices(run.options.redis_kills + 1)
    for part in parts[:-1]:
        mark = run.chaos.aof_mark()
        marked = run.applied_records()
        run.publish(part)
        # A random moment inside this slice: somewhere between 10 % and 90 % of it applied (and committed).
        run.wait_applied(marked + max(1, int(len(part) * run.random.uniform(0.1, 0.9))))
        acknowledged = run.applied_records()
        run.chaos.kill_redis()
        run.chaos.cut_aof(mark)
        run.chaos.up(["redis"])
        record_loss(run, acknowledged, "SIGKILL")
    run.publish(parts[-1])
    run.wait_done()


def run_redis_restore(run: ScenarioRun) -> None:
    """Restore Redis from an RDB snapshot taken mid-stream, after more creates, updates and deletes were
    applied and committed, while the stream goes on; the worker must notice and replay."""
    run.start_worker()
    first, second, third = run.slices(3)
    run.publish(first)
    run.wait_stored(max(1, len(first) // 2))
    snapshot = run.chaos.root / f"{run.settings.group_id}.rdb"
    run.chaos.snapshot_redis(snapshot)
    # After the snapshot: more creates, and deletes of products that come back at version 3 (the audit
    # wants every product stored), so the replay re-applies deletes and re-creates as well.
    fields = dict(abt_buy_products(run.options.products))
    churned = run.random.sample([e.product_id for e in first], max(1, len(first) // 10))
    run.publish([*second, *[product_event(pid, 2, None) for pid in churned]])
    run.wait_applied(run.records_published)
    run.publish([*[product_event(pid, 3, fields[pid]) for pid in churned], *third])
    run.wait_applied(run.applied_records() + 1)
    acknowledged = run.applied_records()
    run.chaos.restore_redis(snapshot)
    record_loss(run, acknowledged, "restore")
    run.wait_done()


def record_loss(run: ScenarioRun, acknowledged: int, what: str) -> None:
    """Count the input records whose acknowledged effects Redis no longer holds; none would mean the
    fault proved nothing."""
    held = run.applied_records()
    if held >= acknowledged:
        raise ChaosError(f"Redis lost nothing in the {what}: applied offsets {acknowledged} before, {held} after")
    run.result.redis_lost_records.append(acknowledged - held)
    run.chaos.progress(f"chaos: {what}: Redis lost the effects of {acknowledged - held} acknowledged input records")


RUNNERS: dict[Scenario, Callable[[ScenarioRun], None]] = {
    "steady": run_steady,
    "kill": run_kill,
    "redis": run_redis_outage,
    "broker": run_broker_restart,
    "broker3": run_broker_node_kill,
    "scale": run_scale,
    "fuzz": run_fuzz,
    "acl-restart": run_acl_restart,
    "redis-kill": run_redis_kill,
    "redis-restore": run_redis_restore,
}


def run_scenario(chaos: ChaosStack, scenario: Scenario, mode: Mode, options: ChaosOptions) -> ScenarioResult:
    run = ScenarioRun(chaos, scenario, mode, options)
    try:
        RUNNERS[scenario](run)
        return run.finish()
    finally:
        run.abandon()


def run_chaos(
    scenarios: Sequence[Scenario], modes: Sequence[Mode], options: ChaosOptions, progress: Progress
) -> list[ScenarioResult]:
    results: list[ScenarioResult] = []
    # One stack per Kafka size: the single-node scenarios share one, broker3 gets a cluster.
    for nodes in sorted({KAFKA_NODES.get(scenario, 1) for scenario in scenarios}):
        with chaos_stack(progress, kafka_nodes=nodes) as chaos:
            for mode in modes:
                for scenario in [s for s in scenarios if KAFKA_NODES.get(s, 1) == nodes]:
                    progress(f"chaos: {scenario} ({mode}), {options.products} products")
                    result = run_scenario(chaos, scenario, mode, options)
                    progress(f"chaos: {scenario} ({mode}): {format_row(result)}")
                    results.append(result)
    return results


# --- the command ------------------------------------------------------------------------------------------

SCENARIO_WIDTH = max(len(name) for name in SCENARIOS)
HEADER = (
    f"{'scenario':<{SCENARIO_WIDTH}} {'mode':<4} {'published':>9} {'processed':>9} {'dead':>5} {'lost':>4} "
    f"{'dup':>4} {'verify':>6} {'seconds':>8} {'prod/s':>7} {'stall':>6} {'ok':>3}"
)


def format_row(r: ScenarioResult) -> str:
    return (
        f"{r.scenario:<{SCENARIO_WIDTH}} {r.mode:<4} {r.published:>9} {r.processed:>9} {r.dead_lettered:>5} "
        f"{r.lost:>4} {r.duplicated:>4} {'ok' if r.verify_ok else 'FAIL':>6} {r.seconds:>8.1f} "
        f"{r.products_per_s:>7.1f} {r.stall_s:>6.1f} {'yes' if r.ok else 'NO':>3}"
    )


def add_chaos_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--mode", choices=["eos", "alo", "both"], default="eos")
    parser.add_argument("--products", type=int, default=2000, help="the first N Abt-Buy offers (at most 2173)")
    parser.add_argument("--kills", type=int, default=5, help="kill: SIGKILLs during the stream")
    parser.add_argument("--outage", type=float, default=10.0, metavar="S", help="redis: seconds Redis stays down")
    parser.add_argument("--bad-records", type=int, default=1000, help="fuzz: bad records interleaved")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=900.0, metavar="S", help="bound of every wait")
    parser.add_argument(
        "--first-load", action="store_true", help="stream into the empty index as a first load (lists in bulk)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per run")


def cmd_chaos(args: argparse.Namespace, settings: Settings) -> int:
    scenarios: list[Scenario] = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    modes: list[Mode] = ["eos", "alo"] if args.mode == "both" else [args.mode]
    options = ChaosOptions(
        products=args.products,
        kills=args.kills,
        outage_s=args.outage,
        bad_records=args.bad_records,
        seed=args.seed,
        timeout_s=args.timeout,
        first_load=args.first_load,
    )

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        results = run_chaos(scenarios, modes, options, progress)
    except SimstreamError as exc:
        print(f"simstream chaos: {exc}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(orjson.dumps([r.as_dict() for r in results], option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(HEADER)
        for result in results:
            print(format_row(result))
    return 0 if all(r.ok for r in results) else 1
