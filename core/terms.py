"""Term statistics for the hybrid score's IDF: an explicit, versioned snapshot stored with the index.

IDF is corpus state. If it followed every catalog change, every list would drift with it and no list
could be verified. So lists are scored with a snapshot: the document frequency of every token over
the catalog's stored texts, counted once, named by a digest of its content (``terms-<12 hex>``) and
stored in Redis beside the products (``terms:<version>``); ``terms:current`` names the one in use.

- A list names the snapshot it was scored with: its ``model`` is ``<encoder>@<revision>+<version>``.
  It is exact for that snapshot, and ``simstream verify`` scores with the same one.
- A first load (core/first_load) counts the snapshot over the catalog it loads, before its bulk
  pass; a catalog without one is scored with uniform token weights.
- ``simstream terms refresh`` counts a new snapshot and switches to it: one script sets
  ``terms:current`` and the first-load marker, so batches defer their list work and a worker's bulk
  pass rebuilds every pool with the new snapshot. A batch that was already scoring with the old one
  reads ``terms:current`` with its PREPAREs (core/pool_refresh) and, seeing it moved, drops its
  lists and counts itself on the marker: the next pass covers them.

Commands: GET, SET and one script (the worker's ACL); the switch touches two global keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import orjson
import redis

from simstream.core.errors import StoreError
from simstream.core.lexical import DocumentFrequencies, smoothed_idf
from simstream.core.redis_client import redis_errors
from simstream.core.redis_keys import RedisKeys
from simstream.core.redis_replies import text

VERSION_PREFIX: Final = "terms-"

# KEYS[1] terms:current, KEYS[2] the first-load marker; ARGV[1] the new version. Switch, and have the
# lists rebuilt: a marker that exists is counted up, so a bulk pass already under way repeats.
_SWITCH: Final = """
redis.call('SET', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.call('INCR', KEYS[2])
end
redis.call('SET', KEYS[2], 0)
return 0
"""


@dataclass(frozen=True, slots=True, eq=False)
class TermStats:
    """Documents and per-token document frequencies, frozen; ``version`` is a digest of both."""

    version: str
    documents: int
    counts: Mapping[str, int]

    @classmethod
    def of(cls, documents: Iterable[Iterable[str]]) -> TermStats:
        """The snapshot of these token bags (one per product; a token counts once per document)."""
        frequencies = DocumentFrequencies.of(documents)
        counts = frequencies.counts()
        return cls(_digest(frequencies.documents, counts), frequencies.documents, counts)

    def idf(self, token: str) -> float:
        return smoothed_idf(self.documents, self.counts.get(token, 0))

    def encode(self) -> bytes:
        return orjson.dumps({"version": self.version, "documents": self.documents, "counts": self.counts})

    @classmethod
    def decode(cls, raw: bytes | str) -> TermStats:
        """A stored snapshot, checked against its own version (a truncated or edited blob is refused)."""
        try:
            data = orjson.loads(raw)
            documents, counts = int(data["documents"]), {str(k): int(v) for k, v in data["counts"].items()}
            version = str(data["version"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"stored term statistics are not readable: {exc!r}") from exc
        if _digest(documents, counts) != version:
            raise StoreError(f"stored term statistics {version!r} do not match their digest")
        return cls(version, documents, counts)


def _digest(documents: int, counts: Mapping[str, int]) -> str:
    body = orjson.dumps({"documents": documents, "counts": counts}, option=orjson.OPT_SORT_KEYS)
    return VERSION_PREFIX + hashlib.blake2b(body, digest_size=6).hexdigest()


def scoring_id(model_id: str, terms: TermStats | None) -> str:
    """What a list's ``model`` field says it was scored with: the encoder, and the snapshot if any."""
    return model_id if terms is None else f"{model_id}+{terms.version}"


class TermsStore:
    """The snapshots in Redis: the current one, loading (cached by version), saving and switching."""

    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._client = client
        self.keys = keys
        self._switch = client.register_script(_SWITCH)
        self._loaded: TermStats | None = None

    def current_version(self) -> str | None:
        with redis_errors("read the current term statistics"):
            value = self._client.get(self.keys.terms_current)
        return None if value is None else text(value)

    def current(self) -> TermStats | None:
        """The snapshot ``terms:current`` names (None: none yet, uniform weights)."""
        version = self.current_version()
        if version is None:
            return None
        if self._loaded is None or self._loaded.version != version:
            with redis_errors(f"read the term statistics {version}"):
                raw = self._client.get(self.keys.terms(version))
            if raw is None:
                raise StoreError(f"terms:current names {version!r}, which is not stored")
            self._loaded = TermStats.decode(raw)
        return self._loaded

    def save(self, stats: TermStats) -> None:
        with redis_errors(f"store the term statistics {stats.version}"):
            self._client.set(self.keys.terms(stats.version), stats.encode())

    def adopt(self, stats: TermStats) -> TermStats:
        """Store ``stats`` and make it current unless a snapshot is current already; the current one."""
        self.save(stats)
        with redis_errors("set the current term statistics"):
            self._client.set(self.keys.terms_current, stats.version, nx=True)
        current = self.current()
        assert current is not None
        return current

    def switch(self, stats: TermStats) -> None:
        """Store ``stats``, make it current and have every list rebuilt with it (core/first_load)."""
        self.save(stats)
        with redis_errors(f"switch to the term statistics {stats.version}"):
            self._switch(keys=[self.keys.terms_current, self.keys.first_load], args=[stats.version])
