"""The Redis shell's reply formatting (redis-cli style) and the demo's printed inspect commands."""

from __future__ import annotations

import shlex

from simstream.demo import demo_settings, inspect_commands
from simstream.redis_shell import format_reply
from simstream.schemas.settings import Settings


def test_scalars_print_as_redis_cli_prints_them() -> None:
    assert format_reply(None) == "(nil)"
    assert format_reply(True) == "(true)"
    assert format_reply(7) == "(integer) 7"
    assert format_reply(1.5) == "(double) 1.5"
    assert format_reply(b"hello") == '"hello"'
    assert format_reply(b'say "hi"') == '"say \\"hi\\""'


def test_binary_and_control_bytes_are_escaped() -> None:
    assert format_reply(b"\x00\x1b[2J\xff") == '"\\x00\\x1b[2J\\xff"'


def test_arrays_and_maps_are_numbered_and_nested_ones_indented() -> None:
    assert format_reply([]) == "(empty array)"
    assert format_reply([b"a", 2, None]) == '1) "a"\n2) (integer) 2\n3) (nil)'
    assert format_reply({b"title": b"TV"}) == '1) "title"\n2) "TV"'
    assert format_reply([b"x", [b"y", b"z"]]) == '1) "x"\n2) 1) "y"\n   2) "z"'


def test_inspect_commands_export_the_demo_namespace_and_nothing_else() -> None:
    base = Settings()
    demo = demo_settings(base.model_copy(update={"kafka_bootstrap": "127.0.0.1:19092"}))
    lines = inspect_commands(demo, base, "abt-552")
    export = shlex.split(lines[0])
    assert export[0] == "export"
    assigned = dict(word.split("=", 1) for word in export[1:])
    assert assigned == {
        "SIMSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:19092",
        "SIMSTREAM_INPUT_TOPIC": "demo.products",
        "SIMSTREAM_OUTPUT_TOPIC": "demo.similar-items",
        "SIMSTREAM_DLQ_TOPIC": "demo.products.dlq",
        "SIMSTREAM_GROUP_ID": "simstream-demo",
        "SIMSTREAM_REDIS_PREFIX": "simstream-demo:",
        "SIMSTREAM_INDEX_NAME": "simstream-demo-idx-v1",
        "SIMSTREAM_INDEX_ALIAS": "simstream-demo-idx",
    }
    commands = [shlex.split(line)[1:] for line in lines[1:]]
    assert commands == [
        ["similar", "abt-552"],
        ["search", "sony turntable", "-k", "5"],
        ["verify"],
        ["redis-shell", "GET", "simstream-demo:similar:abt-552"],
        ["redis-shell"],
    ]


def test_inspect_commands_of_an_unchanged_namespace_need_no_export() -> None:
    base = Settings()
    assert not inspect_commands(base, base, "sku-1")[0].startswith("export")
