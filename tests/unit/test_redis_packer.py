"""The client's command packer sends the bytes redis-py's own serializer would, for every argument kind."""

from __future__ import annotations

from typing import Any

import pytest
from redis._parsers.encoders import Encoder
from redis.connection import HiredisRespSerializer, PythonRespSerializer
from redis.exceptions import DataError

from simstream.core.redis_client import DIRECT_PACKER, make_redis_client
from simstream.schemas.settings import Settings

ENCODER = Encoder("utf-8", "strict", False)
REDIS_PY = HiredisRespSerializer(PythonRespSerializer(6000, ENCODER.encode).pack, ENCODER.encode)

COMMANDS: list[tuple[Any, ...]] = [
    ("SET", "key", "value"),
    ("EVALSHA", "ab" * 20, 2, "p:listmeta:q", "p:product:q", "p:rev:", "q", 17, b"\x00\xff" * 700, "0.61"),
    ("HSET", "k", "f", 0.1 + 0.2, "g", 1e-07, "h", -1.0, "i", float("inf"), "j", 12345678901234567890, "l", -3),
    ("SET", "clé", "värde ✓"),
    ("CONFIG GET", "maxmemory"),  # redis-py names some commands in one string
    (b"CLIENT SETNAME", b"worker"),
    ("SET", "k", bytearray(b"abc")),  # hiredis refuses it: redis-py's serializer packs it
    ("SET", "k", memoryview(b"abc")),
    ("FT.SEARCH", "idx", "*=>[KNN 5 @embedding $vec AS dist]", "PARAMS", 2, "vec", b"\x01" * 1536, "DIALECT", 2),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: str(args[0]))
def test_the_same_bytes_as_redis_py(args: tuple[Any, ...]) -> None:
    assert b"".join(DIRECT_PACKER.pack(*args)) == b"".join(REDIS_PY.pack(*args))


@pytest.mark.parametrize("value", [True, None, object()])
def test_what_redis_py_refuses_is_refused_alike(value: object) -> None:
    with pytest.raises(DataError):
        REDIS_PY.pack("SET", "k", value)
    with pytest.raises(DataError):
        DIRECT_PACKER.pack("SET", "k", value)


def test_clients_from_settings_pack_with_it() -> None:
    client = make_redis_client(Settings(redis_url="redis://127.0.0.1:1/0"))
    assert client.connection_pool.make_connection()._command_packer is DIRECT_PACKER
