"""Changing the model without downtime (`simstream model`), on the real stack with two real models: the
default all-MiniLM-L6-v2 and its dynamic int8 copy (core/quantized), whose vectors differ.

- A whole upgrade (upgrade, updates and deletes meanwhile, gate, promote, more updates, rollback,
  cleanup) while the worker streams and a storefront loop reads: KNN through the alias and ``similar:``
  lists, 0 errors and 0 empty answers; after each swap every list names the live model and is exact
  (``simstream verify``), on the topic too.
- An upgrade killed (SIGKILL) mid-backfill resumes: what the shadow holds is skipped, the rest copied.
- The gate refuses a worse model, and ``--force`` promotes it anyway.
- A batch that wrote just before a shadow was registered runs again and reaches the shadow too.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pytest
import redis
from support.streaming import RunningWorker, event, publish, settled, wait_for

from simstream.consumers.output_reader import read_last_records
from simstream.core.audit import Thresholds, threshold_failures
from simstream.core.encoder import Encoder, TransformerEncoder
from simstream.core.errors import SimstreamError
from simstream.core.generations import GenerationsMoved, GenerationStore
from simstream.core.list_store import ListStore
from simstream.core.pipeline_factory import PipelineFactory
from simstream.core.quantized import quantized_default_model
from simstream.core.redis_client import command, make_redis_client
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import parse_search
from simstream.core.vector_store import RedisVectorStore
from simstream.core.vector_types import vector_blob
from simstream.demo import sample_catalog
from simstream.model_command import ModelCommand
from simstream.model_gate import Labels
from simstream.producers.catalog import read_catalog
from simstream.schemas.settings import Settings
from simstream.verify import run_verify

pytestmark = pytest.mark.integration

CATALOG = 60
DEFAULT_SETTINGS_MODEL = Settings().model


@pytest.fixture
def settings(small_stream: Settings) -> Settings:
    return small_stream


@pytest.fixture(scope="module")
def int8_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quantized_default_model(tmp_path_factory.mktemp("models") / "minilm-int8")[0]


@pytest.fixture(scope="module")
def int8_encoder(int8_folder: Path) -> TransformerEncoder:
    return TransformerEncoder.from_settings(Settings(model=str(int8_folder)))


@pytest.fixture
def encoders(default_encoder: TransformerEncoder, int8_folder: Path, int8_encoder: TransformerEncoder) -> EncoderFor:
    return EncoderFor({DEFAULT_SETTINGS_MODEL: default_encoder, str(int8_folder): int8_encoder})


class EncoderFor:
    """The models of the test session by name, loaded once (a worker would load each model itself)."""

    def __init__(self, by_model: dict[str, Encoder]) -> None:
        self.by_model = by_model

    def __call__(self, settings: Settings) -> Encoder:
        return self.by_model[settings.model]


@pytest.fixture(scope="module")
def labels(tmp_path_factory: pytest.TempPathFactory) -> Labels:
    """150 of Abt-Buy's matched pairs and only their offers: the gate's eval in seconds."""
    abt, buy = sample_catalog()
    folder = tmp_path_factory.mktemp("labels")
    with (abt.parent / "abt_buy_perfectMapping.csv").open(encoding="utf-8") as handle:
        pairs = list(csv.reader(handle))[1:151]
    for source, column, name in ((abt, 0, "left.csv"), (buy, 1, "right.csv")):
        wanted = {pair[column] for pair in pairs}
        with source.open(encoding="latin-1") as handle:
            rows = list(csv.reader(handle))
        with (folder / name).open("w", encoding="utf-8", newline="") as out:
            csv.writer(out).writerows([rows[0], *(row for row in rows[1:] if row and row[0] in wanted)])
    with (folder / "matches.csv").open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows([["idAbt", "idBuy"], *pairs])
    return Labels(folder / "left.csv", folder / "right.csv", folder / "matches.csv")


def products(limit: int, offset: int = 0) -> list[tuple[str, dict[str, Any]]]:
    abt, buy = sample_catalog()
    rows = [
        *list(read_catalog(abt, id_prefix="abt-"))[offset::17],
        *list(read_catalog(buy, id_prefix="buy-"))[offset::17],
    ]
    return [(row.product_id, row.product) for row in rows[:limit]]


def verify_failures(settings: Settings) -> list[str]:
    return threshold_failures(run_verify(settings), Thresholds())


def list_models(settings: Settings, ids: Sequence[str]) -> set[str]:
    return {stored.model.partition("+")[0] for stored in ListStore.from_settings(settings).read_lists(ids).values()}


def topic_models(settings: Settings) -> set[str]:
    return {orjson.loads(v)["model"].partition("+")[0] for v in read_last_records(settings).values() if v is not None}


def generation_states(settings: Settings, client: redis.Redis, ids: Sequence[str]) -> dict[int, dict[str, Any]]:
    """Each generation's (version, exists) per product."""
    found = GenerationStore(client, RedisKeys(settings.redis_prefix)).read()
    assert found is not None
    out: dict[int, dict[str, Any]] = {}
    for generation in (found.live, found.shadow):
        assert generation is not None
        states = RedisVectorStore.from_settings(generation.settings(settings), client).states(ids)
        out[generation.number] = {pid: None if s is None else (s.version, s.exists) for pid, s in states.items()}
    return out


class Storefront:
    """Reads as a storefront does, in a loop: KNN through the alias, and a few products' lists."""

    def __init__(self, settings: Settings, query: npt.NDArray[np.float32], ids: Sequence[str]) -> None:
        self._client = make_redis_client(settings)
        self._settings = settings
        self._blob = vector_blob(query, None)
        self._ids = list(ids)
        self._keys = RedisKeys(settings.redis_prefix)
        self.phase = "before"
        self.reads: dict[str, int] = {}
        self.errors: list[str] = []
        self.empty: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Storefront:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _loop(self) -> None:
        rng = random.Random(7)
        while not self._stop.is_set():
            phase = self.phase
            try:
                reply = command(
                    self._client, "FT.SEARCH", self._settings.index_alias, "*=>[KNN 10 @embedding $v]",
                    "PARAMS", 2, "v", self._blob, "RETURN", 1, "title", "DIALECT", 2,
                )  # fmt: skip
                if not parse_search(reply).total:
                    self.empty.append(f"{phase}: knn")
                for pid in rng.sample(self._ids, 5):
                    if self._client.get(self._keys.similar(pid)) is None:
                        self.empty.append(f"{phase}: similar:{pid}")
            except redis.RedisError as exc:
                self.errors.append(f"{phase}: {exc!r}")
            self.reads[phase] = self.reads.get(phase, 0) + 1


def test_an_upgrade_promote_rollback_and_cleanup_never_fail_a_storefront_read(
    settings: Settings, encoders: EncoderFor, int8_folder: Path, labels: Labels
) -> None:
    default_id, int8_id = (
        encoders.by_model[DEFAULT_SETTINGS_MODEL].model_id,
        encoders.by_model[str(int8_folder)].model_id,
    )
    catalog, later = products(CATALOG), products(6, offset=9)
    kept = [pid for pid, _ in catalog[10:]]  # never deleted: the storefront reads their lists
    client = make_redis_client(settings)
    command_ = ModelCommand(settings, client, encoder_for=encoders)
    query = encoders.by_model[DEFAULT_SETTINGS_MODEL].encode(["sony digital camera"])[0]
    with RunningWorker(settings, encoder_for=encoders) as running:
        publish(settings, [event(pid, 1, product) for pid, product in catalog])
        wait_for(lambda: settled(settings), 300, "the first load's lists")
        with Storefront(settings, query, kept) as storefront:
            storefront.phase = "upgrade"
            report = command_.upgrade(str(int8_folder), progress=False)
            assert report.shadow.number == 2 and not report.resumed
            assert report.backfill.done == CATALOG and report.backfill.counts.encoded == CATALOG

            # Changes while the shadow is built reach both generations: updates, new products, deletes.
            changed = [(pid, {**product, "title": product["title"] + " v2"}) for pid, product in catalog[:6]]
            publish(settings, [event(pid, 2, product) for pid, product in changed])
            publish(settings, [event(pid, 1, product) for pid, product in later])
            publish(settings, [event(pid, 3) for pid, _ in catalog[6:8]])
            wait_for(lambda: settled(settings), 120, "the changes during the upgrade")
            ids = [pid for pid, _ in catalog + later]
            states = generation_states(settings, client, ids)
            assert states[1] == states[2]
            assert all(states[2][pid] == (3, False) for pid, _ in catalog[6:8])
            assert running.stats.generation_switches >= 1 and running.stats.shadow_encoded > 0

            storefront.phase = "promote"
            # 150 pairs are a noisy sample: the int8 copy may lose a query or two on them.
            swap = command_.promote(labels=labels, sample=50, tolerance=0.02, timeout_s=300)
            assert swap.swapped and swap.gate is not None and swap.gate.passed
            assert swap.generations.value == "2,1" and swap.rebuild_s is not None
            wait_for(lambda: settled(settings), 120, "the rebuilt lists to be committed")
            live_ids = [pid for pid in ids if pid not in {p for p, _ in catalog[6:8]}]
            assert list_models(settings, live_ids) == {int8_id}
            assert verify_failures(settings) == []
            assert RedisVectorStore.from_settings(settings, client).alias_target() == f"{settings.index_name[:-3]}-v2"

            # The previous model stays current while it is kept, so a rollback finds today's catalog.
            publish(
                settings,
                [event(pid, 4, {**product, "title": product["title"] + " v4"}) for pid, product in changed[:2]],
            )
            wait_for(lambda: settled(settings), 120, "an update after the promotion")
            states = generation_states(settings, client, ids)
            assert states[1] == states[2] and states[1][changed[0][0]] == (4, True)

            storefront.phase = "rollback"
            back = command_.rollback(timeout_s=300)
            assert back.swapped and back.generations.value == "1,2"
            wait_for(lambda: settled(settings), 120, "the lists rebuilt with the previous model")
            assert list_models(settings, live_ids) == {default_id}
            assert verify_failures(settings) == []

            storefront.phase = "cleanup"
            dropped, _ = command_.cleanup(grace_s=1.0)
            assert dropped.number == 2 and command_.generations.value() == "1"
            publish(settings, [event(pid, 5, product) for pid, product in changed[2:4]])
            wait_for(lambda: settled(settings), 120, "an update after the cleanup")
            storefront.phase = "after"
            time.sleep(1.0)
        assert running.alive()
    assert topic_models(settings) == {default_id}  # every list was emitted again after each swap
    assert not list(client.scan_iter(match=f"{settings.redis_prefix}g2:*"))  # the dropped generation's keys
    assert verify_failures(settings) == []
    print(f"storefront reads per phase: {storefront.reads}; errors {storefront.errors}; empty {storefront.empty}")
    assert storefront.errors == [] and storefront.empty == []
    assert all(storefront.reads.get(phase, 0) > 0 for phase in ("upgrade", "promote", "rollback", "cleanup"))


def test_an_upgrade_killed_mid_backfill_resumes_where_it_stopped(
    settings: Settings, encoders: EncoderFor, int8_folder: Path, default_encoder: TransformerEncoder
) -> None:
    from simstream.load import load_file

    catalog_file = sample_catalog()[1]  # Buy.csv: 1,092 offers
    load_file(settings, catalog_file, encoder=default_encoder, progress=False)
    client = make_redis_client(settings)
    total = RedisVectorStore.from_settings(settings, client).count()
    env = {**os.environ, **_environment(settings)}
    upgrade = subprocess.Popen(
        [sys.executable, "-m", "simstream", "model", "upgrade", "--to", str(int8_folder), "--no-progress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    progress_key = RedisKeys(settings.redis_prefix).backfill(2)
    try:
        wait_for(lambda: int(client.hget(progress_key, "done") or 0) >= 256, 120, "the backfill to start", 0.02)
        upgrade.send_signal(signal.SIGKILL)
    finally:
        upgrade.wait(30)
    done = int(client.hget(progress_key, "done") or 0)
    assert 256 <= done < total, f"killed after {done} of {total}"
    assert client.hget(progress_key, "finished_at") is None
    command_ = ModelCommand(settings, client, encoder_for=encoders)
    with pytest.raises(SimstreamError, match="has not finished"):
        command_.promote()

    report = command_.upgrade(str(int8_folder), progress=False)
    assert report.resumed
    assert report.backfill.counts.current >= done  # what the killed run wrote is not encoded again
    assert report.backfill.counts.encoded <= total - done
    assert report.backfill.counts.encoded + report.backfill.counts.current == total
    ids = RedisVectorStore.from_settings(settings, client).indexed_product_ids()
    states = generation_states(settings, client, ids)
    assert len(ids) == total and states[1] == states[2]
    shadow_row = command_.status()["models"][1]
    assert shadow_row["documents"] == total and shadow_row["differ"] == 0


def test_the_gate_refuses_a_worse_model_unless_forced(
    settings: Settings, encoders: EncoderFor, default_encoder: TransformerEncoder, labels: Labels
) -> None:
    blurred = Blurred(default_encoder)
    encoder_for = EncoderFor({**encoders.by_model, "blurred": blurred})
    with RunningWorker(settings, encoder_for=encoder_for):
        publish(settings, [event(pid, 1, product) for pid, product in products(30)])
        wait_for(lambda: settled(settings), 300, "the first load's lists")
        command_ = ModelCommand(settings, make_redis_client(settings), encoder_for=encoder_for)
        command_.upgrade("blurred", progress=False)
        refused = command_.promote(labels=labels, sample=30)
        assert not refused.swapped and refused.gate is not None and not refused.gate.passed
        assert refused.gate.shadow_score < refused.gate.live_score
        assert command_.generations.value() == "1,2"
        forced = command_.promote(labels=labels, sample=30, force=True, timeout_s=300)
        assert forced.swapped and command_.generations.value() == "2,1"
        wait_for(lambda: settled(settings), 120, "the lists of the forced model")
        with pytest.raises(SimstreamError, match="kept for a rollback"):  # one change at a time
            command_.upgrade(DEFAULT_SETTINGS_MODEL, progress=False)
    assert list_models(settings, [pid for pid, _ in products(30)]) == {blurred.model_id}


class Blurred:
    """The default model's vectors with heavy noise added: a real, clearly worse model."""

    model_id = "blurred@1"

    def __init__(self, base: TransformerEncoder) -> None:
        self._base = base
        self.dim = base.dim

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return self._base.token_counts(texts)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = self._base.encode(texts)
        noise = np.random.default_rng(len(texts)).normal(0.0, 0.5, vectors.shape).astype(np.float32)
        blurred = vectors + noise
        return (blurred / np.linalg.norm(blurred, axis=1, keepdims=True)).astype(np.float32)


def test_a_batch_that_wrote_before_a_shadow_was_registered_runs_again_and_reaches_it(
    settings: Settings, encoders: EncoderFor, int8_folder: Path
) -> None:
    client = make_redis_client(settings)
    factory = PipelineFactory(settings, client, encoder_for=encoders, first_load_on_empty=False)
    pipeline = factory.build()  # built before the registration: writes the live generation only
    now = time.time()
    first = [pipeline.prepare(event(pid, 1, product), now) for pid, product in products(8)]
    pipeline.process(first[:4])
    ModelCommand(settings, client, encoder_for=encoders).upgrade(str(int8_folder), progress=False)
    with pytest.raises(GenerationsMoved):
        pipeline.process(first[4:])  # its live writes landed after the registration: the shadow missed them
    ids = [item.event.product_id for item in first]
    assert all(generation_states(settings, client, ids)[2][pid] is None for pid in ids[4:])
    rebuilt = factory.build()
    result = rebuilt.process(first[4:])  # the retry: live writes replay as no-ops, the shadow gets them
    assert result.shadow_encoded == 4
    states = generation_states(settings, client, ids)
    assert states[1] == states[2] and all(states[2][pid] == (1, True) for pid in ids)
    assert len(factory.loaded_models) == 2
    ModelCommand(settings, client, encoder_for=encoders).cleanup(grace_s=0.0)
    with pytest.raises(GenerationsMoved):
        rebuilt.process(first[:1])  # built for the shadow that is gone
    factory.build()
    assert factory.loaded_models == {encoders.by_model[DEFAULT_SETTINGS_MODEL].model_id}  # the dropped model let go


def _environment(settings: Settings) -> dict[str, str]:
    """The settings a subprocess needs to act on this test's namespace."""
    fields = ("kafka_bootstrap", "redis_url", "redis_prefix", "index_name", "index_alias", "input_topic",
              "output_topic", "dlq_topic", "group_id", "vector_algorithm", "top_k")  # fmt: skip
    return {f"SIMSTREAM_{field.upper()}": str(getattr(settings, field)) for field in fields}
