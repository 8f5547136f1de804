"""`simstream similar` and `simstream search` never write a producer's control characters to the terminal."""

from __future__ import annotations

import pytest
from support.streaming import RunningWorker, create_stream_topics, event, group_lag, publish, stream_settings, wait_for

from simstream.cli import main
from simstream.core.encoder import TransformerEncoder

pytestmark = pytest.mark.integration

HOSTILE_TITLES = {
    "evil-1": "Evil TV \x1b[2J\x1b]0;pwned\x07 40 inch",
    "evil-2": "Evil TV \u202e04 inch\u200b remote",
    "plain-1": "Samsung 40 inch LED TV",
}


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
        publish(settings, [event(pid, 1, {"title": title}) for pid, title in HOSTILE_TITLES.items()])
        wait_for(lambda: group_lag(settings) == 0, 300, "the worker to drain")
    for name in ("kafka_bootstrap", "redis_url", "redis_prefix", "index_name", "index_alias"):
        monkeypatch.setenv(f"SIMSTREAM_{name.upper()}", str(getattr(settings, name)))
    capsys.readouterr()

    assert main(["similar", "plain-1"]) == 0
    shown = capsys.readouterr().out
    assert "evil-1" in shown and "evil-2" in shown and "Evil TV" in shown
    assert not has_raw_control_characters(shown)

    assert main(["search", "evil tv", "-k", "3"]) == 0
    found = capsys.readouterr().out
    assert "evil-1" in found and not has_raw_control_characters(found)
