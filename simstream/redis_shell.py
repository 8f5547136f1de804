"""``simstream redis-shell``: a small Redis prompt over redis-py, with the settings' URL, user, password
and TLS (no working ``redis-cli`` comes with the local stack's wheels).

Each line is split as a shell would (``shlex``: quotes keep spaces) and sent as one command; replies
print much as redis-cli prints them: ``"strings"`` with control bytes escaped, ``(integer) 1``, ``(nil)``,
numbered arrays and maps. ``simstream redis-shell CMD ARGS...`` runs one command and exits.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Sequence

import redis

from simstream.core.redis_client import command, make_redis_client, store_error
from simstream.queries import printable
from simstream.schemas.settings import Settings

PROMPT = "simstream-redis> "
QUIT_WORDS = frozenset({"quit", "exit"})


def format_reply(reply: object, indent: int = 0) -> str:
    """A reply as redis-cli shows it; nested arrays are indented under their number."""
    if reply is None:
        return "(nil)"
    if isinstance(reply, bool):  # RESP3 booleans (a protocol=3 URL)
        return "(true)" if reply else "(false)"
    if isinstance(reply, int):
        return f"(integer) {reply}"
    if isinstance(reply, float):
        return f"(double) {reply}"
    if isinstance(reply, bytes | str):
        text = reply.decode("utf-8", "backslashreplace") if isinstance(reply, bytes) else reply
        return '"' + printable(text).replace('"', '\\"') + '"'
    if isinstance(reply, dict):
        return _numbered([item for pair in reply.items() for item in pair], indent)
    if isinstance(reply, list | tuple | set | frozenset):
        return _numbered(list(reply), indent)
    return printable(str(reply))


def _numbered(items: Sequence[object], indent: int) -> str:
    if not items:
        return "(empty array)"
    width = len(str(len(items)))
    pad = " " * indent
    lines = []
    for number, item in enumerate(items, start=1):
        label = f"{number:>{width}}) "
        body = format_reply(item, indent + len(label))
        lines.append(f"{pad if number > 1 else ''}{label}{body}")
    return "\n".join(lines)


def execute(client: redis.Redis, words: Sequence[str]) -> tuple[str, bool]:
    """The printed reply of one command, and whether it succeeded."""
    try:
        return format_reply(command(client, *words)), True
    except redis.exceptions.ResponseError as exc:  # the server's error reply, as redis-cli shows it
        return f"(error) {printable(str(exc))}", False
    except redis.exceptions.RedisError as exc:  # unreachable, refused credentials, timeouts: say which
        return f"(error) {printable(str(store_error(exc, f'run {words[0]}')))}", False


def repl(client: redis.Redis) -> int:
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  # line editing and history for input(), where the platform has it
    while True:
        try:
            line = input(PROMPT)
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:
            print()
            continue
        try:
            words = shlex.split(line)
        except ValueError as exc:
            print(f"(error) {exc}")
            continue
        if not words:
            continue
        if words[0].lower() in QUIT_WORDS:
            return 0
        print(execute(client, words)[0])


def run_redis_shell(settings: Settings, words: Sequence[str]) -> int:
    """One command (exit 0 on a reply, 1 on an error reply) or the prompt when ``words`` is empty."""
    client = make_redis_client(settings)
    # Replies as the server sent them (HGETALL as a flat array, +OK as "OK"), not redis-py's conversions.
    client.response_callbacks.clear()
    if not words:
        if sys.stdin.isatty():
            print(f"connected to {settings.redis_url.split('@')[-1]}; quit or Ctrl-D to leave")
        return repl(client)
    printed, ok = execute(client, words)
    print(printed)
    return 0 if ok else 1
