"""``simstream bench redis``: HNSW ingest rate, KNN latency (pure and filtered) and recall@10.

Real embeddings only (random vectors give HNSW a recall that says nothing about products): the
Abt-Buy texts, and beyond them the same texts with a word dropped and two swapped, re-encoded by the
real encoder in bulk. Re-encoding is slow on a CPU, so it stops after ``encode_budget_s``; any vectors
still missing are *synthesised*: a real variant's vector (or a base vector) plus Gaussian noise scaled
to the measured distance between a text and its encoded variants, then normalised. The report says
how many vectors came from which source. Each size gets a fresh private index that is dropped after.

Ingest goes through :meth:`RedisVectorStore.upsert` (pipelined, version-fenced), as the worker writes.
Recall@10 is against numpy's exact search over the same vectors (and the same filter).
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simstream.core.encoder import Encoder, TransformerEncoder
from simstream.core.namespace import clear_redis_namespace
from simstream.core.redis_client import make_redis_client
from simstream.core.text import build_text
from simstream.core.vector_store import KnnFilter, ProductWrite, RedisVectorStore
from simstream.demo import sample_catalog
from simstream.producers.catalog import CatalogRow, read_catalog
from simstream.schemas.events import Product
from simstream.schemas.settings import Settings

Vectors = npt.NDArray[np.float32]
INGEST_BATCH = 64  # writes per pipeline: the worker's default batch_max_items
RECALL_K = 10
# Filtered queries keep products priced within this factor of the query's price (a storefront's band).
PRICE_BAND = 2.0


@dataclass(frozen=True, slots=True)
class Corpus:
    """Vectors with their texts and the metadata the index filters on (a variant keeps its source's
    brand, category and price); ``source`` counts where the vectors came from."""

    vectors: Vectors
    texts: list[str]
    titles: list[str]
    brands: list[str]
    categories: list[str]
    prices: list[float | None]
    source: dict[str, int]


def perturb_text(text: str, rng: random.Random) -> str:
    """Drop one word and swap two (the kind of edit a catalog makes); short texts keep their words."""
    words = text.split()
    if len(words) > 3:
        del words[rng.randrange(len(words))]
    if len(words) > 2:
        i, j = rng.sample(range(len(words)), 2)
        words[i], words[j] = words[j], words[i]
    return " ".join(words)


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of non-empty samples."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def exact_top_k(vectors: Vectors, query: Vectors, k: int, allowed: npt.NDArray[np.bool_] | None = None) -> list[int]:
    """Indices of the k highest cosine scores (vectors are unit length), restricted to ``allowed``."""
    scores = vectors @ query
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
        k = min(k, int(allowed.sum()))
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    return [int(i) for i in top[np.argsort(-scores[top], kind="stable")]]


def recall(found: Sequence[int], exact: Sequence[int]) -> float:
    return len(set(found) & set(exact)) / len(exact) if exact else 1.0


def build_corpus(
    encoder: Encoder,
    template: str,
    size: int,
    *,
    encode_budget_s: float,
    seed: int = 0,
    base: Sequence[CatalogRow] | None = None,
) -> Corpus:
    """``size`` vectors: the catalog's texts, then re-encoded variants, then synthesised ones (see module doc).

    ``base``: the catalog rows to start from (default: all of Abt-Buy, Abt first).
    """
    rng = random.Random(seed)
    if base is None:
        abt, buy = sample_catalog()
        base = [*read_catalog(abt, id_prefix="abt-"), *read_catalog(buy, id_prefix="buy-")]
    products = [Product(**row.product) for row in base][:size]
    base_texts = [build_text(product, template) for product in products]
    started = time.perf_counter()
    parts = [encoder.encode(base_texts)]
    texts = list(base_texts)
    origin = list(range(len(base_texts)))  # the catalog product each text comes from
    source = {"catalog_texts": len(base_texts), "reencoded_variants": 0, "synthesised": 0}
    chunk = 256
    while len(texts) < size and time.perf_counter() - started < encode_budget_s:
        picks = [rng.randrange(len(base_texts)) for _ in range(min(chunk, size - len(texts)))]
        variants = [perturb_text(base_texts[i], rng) for i in picks]
        parts.append(encoder.encode(variants))
        texts.extend(variants)
        origin.extend(picks)
        source["reencoded_variants"] += len(variants)
    vectors = np.concatenate(parts).astype(np.float32)
    missing = size - len(texts)
    if missing > 0:
        # Each synthesised vector is a noisy copy of a text's vector, and its text an edit of that text.
        picks = [rng.randrange(len(texts)) for _ in range(missing)]
        vectors = np.concatenate([vectors, _synthesise(vectors, len(base_texts), missing, rng, sources=picks)])
        texts.extend(perturb_text(texts[i], rng) for i in picks)
        origin.extend(origin[i] for i in picks)
        source["synthesised"] = missing
    return Corpus(
        vectors=vectors,
        texts=texts,
        titles=[text.split("\n", 1)[0][:200] for text in texts],
        brands=[products[i].brand or "" for i in origin],
        categories=[products[i].category or "" for i in origin],
        prices=[products[i].price for i in origin],
        source=source,
    )


def _synthesise(
    vectors: Vectors, n_base: int, count: int, rng: random.Random, *, sources: Sequence[int] | None = None
) -> Vectors:
    """Noisy copies of real vectors (the rows ``sources``, else random ones), the noise matching how far
    an encoded variant lies from its text.

    Without encoded variants, a fixed typical scale (cosine ~0.95 to the source) is used.
    """
    generator = np.random.default_rng(rng.randrange(2**32))
    dim = vectors.shape[1]
    # A variant's distance to its nearest catalog vector approximates its distance to its own text.
    if len(vectors) > n_base:
        sample = vectors[n_base : n_base + 512]
        distances = 1.0 - (sample @ vectors[:n_base].T).max(axis=1)
        mean_distance = float(np.clip(distances.mean(), 1e-4, 0.5))
    else:
        mean_distance = 0.05
    # For a unit vector u plus noise of per-coordinate sigma, 1 - cos ~ dim * sigma^2 / 2.
    sigma = (2 * mean_distance / dim) ** 0.5
    rows = generator.integers(0, len(vectors), count) if sources is None else np.asarray(sources, dtype=np.int64)
    noisy = vectors[rows] + generator.normal(0.0, sigma, size=(count, dim)).astype(np.float32)
    normalised: Vectors = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)
    return normalised


def _private(settings: Settings, m: int, ef_construction: int, ef_runtime: int) -> Settings:
    name = f"bench-redis-{uuid.uuid4().hex[:8]}"
    return settings.model_copy(
        update={
            "redis_prefix": f"{name}:",
            "index_name": f"{name}-idx",
            "index_alias": f"{name}-alias",
            "vector_algorithm": "HNSW",
            "hnsw_m": m,
            "hnsw_ef_construction": ef_construction,
            "hnsw_ef_runtime": ef_runtime,
        }
    )


def _writes(corpus: Corpus, model_id: str, start: int, stop: int) -> list[ProductWrite]:
    now = time.time()
    return [
        ProductWrite(
            product_id=f"p{i}",
            version=1,
            content_hash=f"h{i}",
            model=model_id,
            title=corpus.titles[i],
            brand="",
            category="",
            price=corpus.prices[i],
            updated_at=now,
            embedding=corpus.vectors[i],
        )
        for i in range(start, stop)
    ]


def _price_filter(price: float) -> KnnFilter:
    return KnnFilter(min_price=price / PRICE_BAND, max_price=price * PRICE_BAND)


def bench_one_size(
    settings: Settings, corpus: Corpus, size: int, model_id: str, *, queries: int, seed: int
) -> dict[str, Any]:
    """Ingest the first ``size`` vectors into a fresh index, then time queries and measure recall."""
    client = make_redis_client(settings)
    store = RedisVectorStore.from_settings(settings, client)
    vectors = corpus.vectors[:size]
    memory_before = int(client.info("memory")["used_memory"])
    store.ensure_index(vectors.shape[1], model_id)
    try:
        started = time.perf_counter()
        for start in range(0, size, INGEST_BATCH):
            store.upsert(_writes(corpus, model_id, start, min(size, start + INGEST_BATCH)))
        ingest_s = time.perf_counter() - started
        store.wait_indexed(timeout_s=600)
        memory_mb = (int(client.info("memory")["used_memory"]) - memory_before) / 2**20
        rng = random.Random(seed)
        picks = rng.sample(range(size), min(queries, size))
        pure = _query_run(store, vectors, picks, filtered=False, prices=corpus.prices[:size])
        priced = [i for i in range(size) if corpus.prices[i] is not None]
        filtered_picks = rng.sample(priced, min(queries, len(priced))) if priced else []
        filtered = _query_run(store, vectors, filtered_picks, filtered=True, prices=corpus.prices[:size])
    finally:
        clear_redis_namespace(settings, client)
    return {
        "vectors": size,
        "ingest_s": round(ingest_s, 3),
        "ingest_vectors_per_s": round(size / ingest_s, 1),
        "memory_mb": round(memory_mb, 1),
        "knn_pure": pure,
        "knn_filtered": filtered,
    }


def _query_run(
    store: RedisVectorStore, vectors: Vectors, picks: Sequence[int], *, filtered: bool, prices: Sequence[float | None]
) -> dict[str, Any]:
    if not picks:
        return {"queries": 0}
    price_array = np.array([np.nan if p is None else p for p in prices], dtype=np.float64)
    latencies: list[float] = []
    recalls: list[float] = []
    for index in picks:
        query = vectors[index]
        flt: KnnFilter | None = None
        allowed: npt.NDArray[np.bool_] | None = None
        if filtered:
            price = float(price_array[index])
            flt = _price_filter(price)
            # NaN (no price) compares False: unpriced products fail a price filter, as in RediSearch.
            allowed = (price_array >= price / PRICE_BAND) & (price_array <= price * PRICE_BAND)
        started = time.perf_counter()
        neighbours = store.knn(query, RECALL_K, flt=flt)
        latencies.append(time.perf_counter() - started)
        found = [int(n.product_id[1:]) for n in neighbours]
        recalls.append(recall(found, exact_top_k(vectors, query, RECALL_K, allowed)))
    return {
        "queries": len(picks),
        "p50_ms": round(percentile(latencies, 50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 99) * 1000, 3),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3),
        f"recall_at_{RECALL_K}": round(statistics.fmean(recalls), 4),
    }


def run_redis_bench(
    settings: Settings,
    *,
    sizes: Sequence[int] = (2000, 10000),
    m: int | None = None,
    ef_construction: int | None = None,
    ef_runtime: int | None = None,
    queries: int = 200,
    encode_budget_s: float = 120.0,
    seed: int = 0,
    encoder: Encoder | None = None,
) -> dict[str, Any]:
    """A JSON-ready dict: one row per size (see :func:`format_redis_table`)."""
    if not sizes or min(sizes) < RECALL_K or queries < 1:
        raise ValueError(f"sizes must be at least {RECALL_K} and queries at least 1")
    hnsw = (
        m or settings.hnsw_m,
        ef_construction or settings.hnsw_ef_construction,
        ef_runtime or settings.hnsw_ef_runtime,
    )
    model = encoder or TransformerEncoder.from_settings(settings)
    started = time.perf_counter()
    corpus = build_corpus(model, settings.text_template, max(sizes), encode_budget_s=encode_budget_s, seed=seed)
    corpus_s = time.perf_counter() - started
    rows = [
        bench_one_size(_private(settings, *hnsw), corpus, size, model.model_id, queries=queries, seed=seed)
        for size in sorted(sizes)
    ]
    return {
        "sizes": rows,
        "vector_source": corpus.source,
        "corpus_build_s": round(corpus_s, 1),
        "config": {
            "model": model.model_id,
            "dim": model.dim,
            "m": hnsw[0],
            "ef_construction": hnsw[1],
            "ef_runtime": hnsw[2],
            "k": RECALL_K,
            "ingest_batch": INGEST_BATCH,
            "filter": f"price within x{PRICE_BAND} of the query's price",
            "redis_url_host": settings.redis_url.rsplit("@", 1)[-1],
        },
    }


def format_redis_table(result: dict[str, Any]) -> str:
    config = result["config"]
    source = result["vector_source"]
    lines = [
        f"HNSW M={config['m']} EF_CONSTRUCTION={config['ef_construction']} EF_RUNTIME={config['ef_runtime']}, "
        f"{config['dim']}-d {config['model']}, recall@{config['k']} vs exact numpy",
        f"vectors: {source['catalog_texts']} catalog texts, {source['reencoded_variants']} re-encoded variants, "
        f"{source['synthesised']} synthesised (noisy copies)",
        f"{'vectors':>8} {'ingest/s':>9} {'MB':>7} {'pure p50':>9} {'p99':>7} {'recall':>7} "
        f"{'filt p50':>9} {'p99':>7} {'recall':>7}",
    ]
    key = f"recall_at_{config['k']}"
    for row in result["sizes"]:
        pure, filt = row["knn_pure"], row["knn_filtered"]
        lines.append(
            f"{row['vectors']:>8} {row['ingest_vectors_per_s']:>9} {row['memory_mb']:>7} "
            f"{pure['p50_ms']:>9} {pure['p99_ms']:>7} {pure[key]:>7} "
            f"{filt.get('p50_ms', '-'):>9} {filt.get('p99_ms', '-'):>7} {filt.get(key, '-'):>7}"
        )
    lines.append("latencies in ms, one round trip per query (redis-py, loopback)")
    return "\n".join(lines)
