"""Redis losing acknowledged writes loses nothing: the worker sees that Redis is behind what it committed
and replays from where Redis really is.

The loss is made exactly: every key of the test's namespace is copied (DUMP) after a first load, more
events are applied, then the copy is put back (RESTORE), which is what a restore from an older snapshot
or a crash that lost the last writes leaves behind, while the worker keeps running.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.streaming import RunningWorker, create_stream_topics, event, publish, settled, stream_settings, wait_for

from simstream.core.applied_offsets import AppliedOffsets
from simstream.core.audit import Thresholds, threshold_failures
from simstream.core.encoder import TransformerEncoder
from simstream.core.list_store import ListStore
from simstream.core.namespace import clear_redis_namespace
from simstream.core.redis_client import make_redis_client
from simstream.core.redis_keys import RedisKeys
from simstream.core.vector_store import RedisVectorStore
from simstream.schemas.settings import Settings
from simstream.verify import run_verify

pytestmark = pytest.mark.integration

TITLES = [
    "Sony turntable PS-LX350H belt drive",
    "Denon turntable DP-300F automatic",
    "Canon camera EOS Rebel T6 kit",
    "Nikon camera D3500 DSLR kit",
    "Bose speaker SoundLink Mini II",
    "JBL speaker Flip 5 waterproof",
    "Logitech mouse M510 wireless",
    "Apple mouse Magic Mouse 2",
]


@pytest.fixture
def settings(kafka_bootstrap: str, redis_url: str, unique_name: str) -> Iterator[Settings]:
    configured = stream_settings(kafka_bootstrap, redis_url, unique_name, redis_position_check_s=0.5)
    create_stream_topics(configured, partitions=2)
    yield configured
    clear_redis_namespace(configured)


def product(i: int, version: int) -> dict[str, object]:
    return {"title": f"{TITLES[i % len(TITLES)]} v{version} #{i}", "price": 10.0 + i}


def test_a_redis_that_lost_acknowledged_writes_is_replayed_from_where_it_is(
    settings: Settings, default_encoder: TransformerEncoder
) -> None:
    client = make_redis_client(settings)
    store = RedisVectorStore.from_settings(settings, client)
    lists = ListStore.from_settings(settings, client)
    ids = [f"sku-{i}" for i in range(24)]

    def drained() -> bool:
        return settled(settings)

    def versions() -> dict[str, int | None]:
        return {pid: None if s is None or not s.exists else s.version for pid, s in store.states(ids).items()}

    with RunningWorker(settings, default_encoder) as running:
        publish(settings, [event(pid, 1, product(i, 1)) for i, pid in enumerate(ids)])
        wait_for(lambda: drained() and all(v == 1 for v in versions().values()), 180, "the first load")
        snapshot = {key: client.dump(key) for key in client.scan_iter(match=f"{settings.redis_prefix}*")}
        stamp_before = store.catalog_stamp()

        # Acknowledged and committed: updates, deletes, creates.
        publish(settings, [event(pid, 2, product(i, 2)) for i, pid in enumerate(ids[:12])])
        publish(settings, [event(pid, 3) for pid in ids[12:16]])
        wait_for(lambda: drained() and versions()["sku-0"] == 2, 120, "the second round")
        expected = versions()
        stamp_committed = store.catalog_stamp()

        # Redis comes back without them.
        for key in client.scan_iter(match=f"{settings.redis_prefix}*"):
            client.delete(key)
        for key, value in snapshot.items():
            client.restore(key, 0, value, replace=True)
        assert versions() != expected and store.catalog_stamp() == stamp_before

        wait_for(lambda: versions() == expected, 120, "the lost writes to be replayed")
        wait_for(drained, 60, "the replay to be committed")
        assert running.stats.records_in > 24 + 16, "nothing was read twice: no replay happened"
        assert running.alive()
    # The replayed lists outrank what readers already saw, and every list is exact again.
    assert store.catalog_stamp() > stamp_committed
    current = lists.read_lists([pid for pid in ids if expected[pid] is not None])
    assert all(stored.list_version > stamp_committed for pid, stored in current.items() if pid in ids[:12])
    report = run_verify(settings)
    assert threshold_failures(report, Thresholds()) == []


def test_the_recorded_offsets_never_move_back(redis_url: str, unique_name: str) -> None:
    """A zombie worker that finishes a batch after the partition's new owner went further cannot make
    Redis claim less than it holds (which would replay for nothing) or, worse, more."""
    settings = Settings(redis_url=redis_url, redis_prefix=f"{unique_name}:")
    client = make_redis_client(settings)
    ledger = AppliedOffsets(client, RedisKeys(settings.redis_prefix), "group")
    run_id = ledger.incarnation()
    ledger.advance({("products", 0): 10, ("products", 1): 5}, run_id)
    ledger.advance({("products", 0): 7, ("products", 1): 9}, run_id)
    assert ledger.read([("products", 0), ("products", 1), ("products", 2)])[1] == {
        ("products", 0): 10,
        ("products", 1): 9,
        ("products", 2): None,
    }
    client.delete(RedisKeys(settings.redis_prefix).applied_offsets("group"))


def test_offsets_are_recorded_only_by_the_redis_process_the_batch_started_on(redis_url: str, unique_name: str) -> None:
    # A Redis that restarted mid-batch (redis-py retries on the new process) may have lost the writes
    # of earlier batches: taking this batch's offsets would hide that loss from every later check.
    configured = Settings(redis_url=redis_url, redis_prefix=f"{unique_name}:")
    client = make_redis_client(configured)
    applied = AppliedOffsets(client, RedisKeys(configured.redis_prefix), "group")
    partition = ("products", 0)
    try:
        assert not applied.advance({partition: 7}, "0" * 40)  # another process's batch
        assert applied.read([partition]) == (applied.incarnation(), {partition: None})
        assert applied.advance({partition: 7}, applied.incarnation())
        assert applied.read([partition])[1] == {partition: 7}
    finally:
        client.delete(RedisKeys(configured.redis_prefix).applied_offsets("group"))
