"""Storefront-style reads from the command line: a stored list, and a filtered KNN for a text."""

from __future__ import annotations

import unicodedata

import orjson

from simstream.core.generations import live_settings
from simstream.core.list_store import ListStore
from simstream.core.redis_client import make_redis_client
from simstream.core.vector_store import KnnFilter, RedisVectorStore
from simstream.schemas.settings import Settings


def printable(text: str) -> str:
    """``text`` safe for a terminal: control and format characters (ESC sequences, NUL, bidi overrides,
    zero-width marks) become visible escapes (``\\x1b``, ``\\u202e``); titles come from producers."""
    return "".join(_escape(char) if unicodedata.category(char).startswith("C") else char for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def show_similar(settings: Settings, product_id: str, *, as_json: bool = False) -> int:
    client = make_redis_client(settings)
    settings = live_settings(settings, client)
    stored = ListStore.from_settings(settings, client).read_list(product_id)
    if stored is None:
        print(f"no similar-items list stored for {printable(repr(product_id))}")
        return 1
    if as_json:
        print(stored.payload.decode())
        return 0
    store = RedisVectorStore.from_settings(settings, client)
    titles = store.metadata([product_id, *(n.product_id for n in stored.items)])
    print(f"{printable(product_id)}  {printable(titles.get(product_id, {}).get('title', '?'))}")
    print(f"list_version={stored.list_version} source_version={stored.source_version} model={printable(stored.model)}")
    for rank, item in enumerate(stored.items, start=1):
        title = titles.get(item.product_id, {}).get("title", "?")
        print(f"{rank:3}. {item.score:.3f}  {printable(item.product_id):16} {printable(title)}")
    return 0


def search(
    settings: Settings,
    text: str,
    *,
    k: int = 10,
    category: str | None = None,
    brand: str | None = None,
    min_price: float | None = None,
    max_price: float | None = None,
    as_json: bool = False,
) -> int:
    from simstream.core.encoder import TransformerEncoder

    client = make_redis_client(settings)
    settings = live_settings(settings, client)  # a query vector of the live model, for its index
    encoder = TransformerEncoder.from_settings(settings)
    vector = encoder.encode([text])[0]
    store = RedisVectorStore.from_settings(settings, client)
    flt = KnnFilter(category=category, brand=brand, min_price=min_price, max_price=max_price)
    hits = store.knn(vector, k, flt=flt)
    meta = store.metadata([hit.product_id for hit in hits])
    if as_json:
        rows = [{"product_id": h.product_id, "score": round(h.score, 6), **meta.get(h.product_id, {})} for h in hits]
        print(orjson.dumps(rows).decode())
        return 0
    for rank, hit in enumerate(hits, start=1):
        info = meta.get(hit.product_id, {})
        price = info.get("price") or "-"
        title = printable(info.get("title", "?"))
        print(f"{rank:3}. {hit.score:.3f}  {printable(hit.product_id):16} {printable(price):>9}  {title}")
    return 0 if hits else 1
