"""count_redis_traffic on a real Redis: a pipeline is one round trip, each command is counted by name."""

from __future__ import annotations

import threading

import pytest
import redis
from redis.connection import AbstractConnection

from simstream.redis_traffic import count_redis_traffic


def test_a_pipeline_of_three_commands_is_one_round_trip_and_three_commands(redis_url: str, unique_name: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.ping()  # connect (HELLO, CLIENT SETINFO) before counting
    try:
        with count_redis_traffic() as traffic:
            pipe = client.pipeline(transaction=False)
            pipe.set(f"{unique_name}:a", 1)
            pipe.hset(f"{unique_name}:h", "f", "v")
            pipe.hmget(f"{unique_name}:h", ["f"])
            assert pipe.execute() == [True, 1, [b"v"]]
        assert traffic.round_trips == 1
        assert traffic.total_commands == 3
        assert traffic.commands == {"SET": 1, "HSET": 1, "HMGET": 1}

        with count_redis_traffic() as traffic:
            client.get(f"{unique_name}:a")
            client.execute_command("ft._list")
        assert traffic.snapshot() == {"round_trips": 2, "commands": 2, "by_command": {"GET": 1, "FT._LIST": 1}}
    finally:
        client.delete(f"{unique_name}:a", f"{unique_name}:h")


def test_other_threads_count_and_the_originals_come_back(redis_url: str) -> None:
    original = AbstractConnection.__dict__["send_packed_command"]
    client = redis.Redis.from_url(redis_url)
    client.ping()
    with count_redis_traffic() as traffic:
        workers = [threading.Thread(target=lambda: [client.ping() for _ in range(50)]) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        with pytest.raises(RuntimeError), count_redis_traffic():
            pass
    assert traffic.round_trips >= 200 and traffic.commands["PING"] == 200
    assert AbstractConnection.__dict__["send_packed_command"] is original
    client.ping()
    assert traffic.commands["PING"] == 200  # nothing counts after exit
