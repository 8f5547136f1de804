"""`simstream similar` and `simstream search` never write a stored title's control or format characters
to the terminal: line breaks, tabs and bidi/zero-width marks pass the contract, and a title stored
before it (or by another writer) may hold anything, ESC sequences included."""

from __future__ import annotations

import pytest
from support.streaming import RunningWorker, create_stream_topics, event, publish, settled, stream_settings, wait_for

from simstream.cli import main
from simstream.core.encoder import TransformerEncoder
from simstream.core.redis_client import make_redis_client
from simstream.core.redis_keys import RedisKeys

pytestmark = pytest.mark.integration

TITLES = {
    "evil-1": "Evil TV 40 inch",  # its stored title is replaced by LEGACY_TITLE below
    "evil-2": "Evil TV \u202e04 inch\u200b remote\n\tsecond line",
    "plain-1": "Samsung 40 inch LED TV",
}
LEGACY_TITLE = "Evil TV \x1b[2J\x1b]0;pwned\x07 40 inch\r"


def has_raw_control_characters(text: str) -> bool:
    return any(not char.isprintable() and char != "\n" for char in text)


def test_similar_and_search_escape_control_characters_in_titles(
    kafka_bootstrap: str,
    redis_url: str,
    unique_name: str,
    default_encoder: TransformerEncoder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = stream_settings(kafka_bootstrap, redis_url, unique_name, vector_algorithm="FLAT")
    create_stream_topics(settings)
    with RunningWorker(settings, default_encoder):
        publish(settings, [event(pid, 1, {"title": title}) for pid, title in TITLES.items()])
        wait_for(lambda: settled(settings), 300, "the worker to drain")
    make_redis_client(settings).hset(RedisKeys(settings.redis_prefix).product("evil-1"), "title", LEGACY_TITLE)
    for name in ("kafka_bootstrap", "redis_url", "redis_prefix", "index_name", "index_alias"):
        monkeypatch.setenv(f"SIMSTREAM_{name.upper()}", str(getattr(settings, name)))
    capsys.readouterr()

    assert main(["similar", "plain-1"]) == 0
    shown = capsys.readouterr().out
    assert "evil-1" in shown and "evil-2" in shown
    assert "Evil TV \\x1b[2J\\x1b]0;pwned\\x07 40 inch\\x0d" in shown
    assert "Evil TV \\u202e04 inch\\u200b remote\\x0a\\x09second line" in shown
    assert not has_raw_control_characters(shown)
    assert len(shown.splitlines()) == 2 + 2  # the header lines and one line per listed product

    assert main(["search", "evil tv", "-k", "3"]) == 0
    found = capsys.readouterr().out
    assert "evil-1" in found and not has_raw_control_characters(found)
