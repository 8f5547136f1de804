"""Command-line input errors are one line on stderr and exit 2; printed titles never reach the terminal raw."""

from __future__ import annotations

import pytest

from simstream.cli import main
from simstream.queries import printable


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["search", "x", "--max-price", "nan"], "--max-price: must be a finite number"),
        (["search", "x", "--min-price", "inf"], "--min-price: must be a finite number"),
        (["search", "x", "--max-price", "-1"], "--max-price: must be a finite number of at least 0"),
        (["search", "x", "--max-price", "cheap"], "--max-price: not a number"),
        (["search", "x", "-k", "0"], "-k: must be at least 1, got 0"),
        (["search", "x", "-k", "-5"], "-k: must be at least 1, got -5"),
        (["search", "x", "-k", "two"], "-k: not an integer"),
        (["no-such-command"], "invalid choice"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("SIMSTREAM_TOP_K", "abc", "SIMSTREAM_TOP_K: Input should be a valid integer"),
        ("SIMSTREAM_TOP_K", "0", "SIMSTREAM_TOP_K: Input should be greater than or equal to 1"),
        ("SIMSTREAM_MIN_SCORE", "nan", "SIMSTREAM_MIN_SCORE: Input should be a finite number"),
        ("SIMSTREAM_EXACTLY_ONCE", "maybe", "SIMSTREAM_EXACTLY_ONCE: Input should be a valid boolean"),
        ("SIMSTREAM_KAFKA_EXTRA", "{not json", 'field "kafka_extra"'),
        ("SIMSTREAM_KAFKA_SSL_KEY_LOCATION", "/key.pem", "mutual TLS"),
    ],
)
def test_invalid_settings_are_one_line_and_exit_2(
    env: str, value: str, expected: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(env, value)
    assert main(["config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("simstream: invalid settings: ") and expected in captured.err
    assert captured.err.count("\n") == 1


def test_a_secret_is_never_echoed_in_a_settings_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIMSTREAM_REDIS_PASSWORD", "hunter2")
    monkeypatch.setenv("SIMSTREAM_TOP_K", "hunter2")
    assert main(["config"]) == 2
    assert "hunter2" not in capsys.readouterr().err


def test_printable_escapes_control_and_format_characters() -> None:
    hostile = "Evil\x1b[2J\x1b]0;pwned\x07 TV\x00\u202eVT\u200b \U000e0041"
    shown = printable(hostile)
    assert shown == "Evil\\x1b[2J\\x1b]0;pwned\\x07 TV\\x00\\u202eVT\\u200b \\U000e0041"
    assert all(char.isprintable() for char in shown)


def test_printable_keeps_ordinary_text() -> None:
    text = "Sony PS-LX350H Plattenspieler, 黑色 €99, café"
    assert printable(text) == text
