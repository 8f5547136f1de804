"""`simstream demo` (shortened to a tiny catalog, with a model change at the end) ends with commands that
work exactly as printed, and
`simstream redis-shell` answers one command or a prompt on the real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient

from simstream.core.namespace import clear_redis_namespace
from simstream.demo import demo_settings, run_demo
from simstream.schemas.settings import kafka_client_config
from tests.integration.conftest import SessionStack

PRODUCTS = 40
COMMAND_TIMEOUT_S = 600


def clean_env() -> dict[str, str]:
    """The environment of a new shell: none of this test session's SIMSTREAM_* settings."""
    return {name: value for name, value in os.environ.items() if not name.startswith("SIMSTREAM_")}


def run_printed(export: str, command: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"{export}\n{command}"],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=Path.cwd(),
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


@pytest.fixture
def demo_on_the_test_stack(
    kafka_bootstrap: str, redis_url: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> Iterator[list[str]]:
    if os.environ.get("SIMSTREAM_KAFKA_BOOTSTRAP") or os.environ.get("SIMSTREAM_REDIS_URL"):
        pytest.skip("the demo runs on the local stack, not on external services")
    session: SessionStack = request.getfixturevalue("session_stack")
    base = session.settings
    # With a model change at the end: the printed commands must work on the live model, whichever it is.
    assert run_demo(base, products=PRODUCTS, upgrade_to="int8") == 0
    out = capsys.readouterr().out
    assert "== changing the model to " in out and "gate: mean recall@1" in out
    assert ("promoted: alias swapped" in out) != ("not promoted: the gate refused it" in out)
    block = out.split("== inspect what the demo built", 1)[1].split("\n\n", 1)[0]
    lines = [line for line in block.splitlines()[1:] if line.strip()]
    settings = demo_settings(base.model_copy(update={"kafka_bootstrap": kafka_bootstrap, "redis_url": redis_url}))
    yield lines
    clear_redis_namespace(settings)
    admin = AdminClient(kafka_client_config(settings))
    for future in admin.delete_topics([settings.input_topic, settings.output_topic, settings.dlq_topic]).values():
        future.result(30)


def test_the_commands_printed_by_the_demo_work_as_printed(demo_on_the_test_stack: list[str]) -> None:
    export, *commands = demo_on_the_test_stack
    assert export.startswith("export ") and "SIMSTREAM_OUTPUT_TOPIC=demo.similar-items" in export
    similar, search, verify, shell_get, shell = commands
    assert " similar " in similar and " search " in search and verify.endswith(" verify")

    shown = run_printed(export, similar)
    assert shown.returncode == 0, shown.stderr
    product_id = similar.split()[-1]
    assert shown.stdout.startswith(product_id) and "list_version=" in shown.stdout

    found = run_printed(export, search)
    assert found.returncode == 0, found.stderr
    assert "  1. " in found.stdout

    audited = run_printed(export, verify)
    assert audited.returncode == 0, audited.stdout + audited.stderr

    got = run_printed(export, shell_get)
    assert got.returncode == 0, got.stderr
    reply = got.stdout.strip()
    assert reply.startswith('"{') and reply.endswith('}"')
    stored = orjson.loads(reply[1:-1].replace('\\"', '"'))
    assert stored["product_id"] == product_id and stored["items"]

    prompt = run_printed(export, shell, stdin=shell_get.split(" redis-shell ", 1)[1] + "\nquit\n")
    assert prompt.returncode == 0, prompt.stderr
    assert prompt.stdout.split("simstream-redis> ")[1].strip() == reply


def test_redis_shell_one_command_and_prompt(redis_url: str, unique_name: str) -> None:
    env = {**clean_env(), "SIMSTREAM_REDIS_URL": redis_url}
    key = f"{unique_name}:greeting"

    def shell(*words: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "simstream"), "redis-shell", *words],
            input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip

    assert shell("SET", key, 'hello "world"').stdout == '"OK"\n'
    assert shell("GET", key).stdout == '"hello \\"world\\""\n'
    assert shell("HSET", f"{key}:h", "a", "1").stdout == "(integer) 1\n"
    failed = shell("NOSUCHCOMMAND")
    assert failed.returncode == 1 and failed.stdout.startswith("(error) ")

    session = shell(stdin=f"GET {key}\nHGETALL '{key}:h'\nGET 'unbalanced\nDEL {key} {key}:h\nquit\n")
    assert session.returncode == 0, session.stderr
    assert session.stdout.split("simstream-redis> ")[1:] == [
        '"hello \\"world\\""\n',
        '1) "a"\n2) "1"\n',
        "(error) No closing quotation\n",
        "(integer) 2\n",
        "",
    ]
