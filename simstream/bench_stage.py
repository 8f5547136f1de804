"""``simstream bench stage``: the pipeline's compute stage with no Kafka or Redis, on CPU or CUDA.

Encode real product texts (the production encoder: bf16 autocast on CUDA), then an exact in-memory
top-K of every item against the whole batch on the same device (what the KNN would cost if the
vectors stayed on the accelerator). Also probes the device's dense matmul rate and reports items/s
against the FLOP bound: 2 x non-embedding parameters x tokens per item over that rate (attention's
own FLOPs and padding are left out, so real work sits above the bound's count).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from simstream.bench_encoder import load_product_texts
from simstream.core.encoder import TransformerEncoder
from simstream.schemas.settings import Settings

TOP_K = 20
QUERY_BATCH = 64


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_rate(device: str, *, n: int | None = None, repeats: int = 10) -> dict[str, Any]:
    """FLOP/s of an n x n matmul: bf16 on CUDA (8192 by default), float32 on CPU (1024: what it runs)."""
    cuda = device.startswith("cuda")
    size = n or (8192 if cuda else 1024)
    dtype = torch.bfloat16 if cuda else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.matmul(a, b)  # kernel selection, allocator
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.matmul(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - started)
    return {"n": size, "dtype": str(dtype).removeprefix("torch."), "flops_per_s": 2 * size**3 / best}


def non_embedding_parameters(encoder: TransformerEncoder) -> int:
    """Parameters outside the embedding tables (they are lookups, not FLOPs)."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(encoder.model_path), local_files_only=True)
    return sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)


def top_k_rate(vectors: torch.Tensor, k: int, repeats: int) -> float:
    """Queries/s of exact top-K (self excluded) of every row against all rows, in batches of QUERY_BATCH."""
    device = str(vectors.device)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(vectors), QUERY_BATCH):
            scores = vectors[start : start + QUERY_BATCH] @ vectors.T
            torch.topk(scores, min(k + 1, len(vectors)), dim=1)
        _sync(device)
        best = min(best, time.perf_counter() - started)
    return len(vectors) / best


def run_stage_bench(
    settings: Settings, *, n_items: int = 512, repeats: int = 3, catalog: int | None = None, matmul_n: int | None = None
) -> dict[str, Any]:
    if n_items < 2 or repeats < 1:
        raise ValueError("n_items must be at least 2 and repeats at least 1")
    encoder = TransformerEncoder.from_settings(settings)
    texts = load_product_texts(settings.text_template, limit=n_items)
    tokens = sum(encoder.token_counts(texts))
    encoder.encode(texts[:64])  # warm up
    encode_s = float("inf")
    for _ in range(repeats):
        _sync(encoder.device)
        started = time.perf_counter()
        vectors = encoder.encode(texts)
        encode_s = min(encode_s, time.perf_counter() - started)
    # The catalog the top-K runs against: the encoded items, tiled up to ``catalog`` rows when asked.
    table = torch.from_numpy(vectors).to(encoder.device)
    if catalog and catalog > len(table):
        table = table.repeat((catalog + len(table) - 1) // len(table), 1)[:catalog]
    topk_per_s = top_k_rate(table, TOP_K, repeats)
    encode_per_s = n_items / encode_s
    stage_per_s = 1 / (1 / encode_per_s + 1 / topk_per_s)
    rate = matmul_rate(encoder.device, n=matmul_n)
    params = non_embedding_parameters(encoder)
    tokens_per_item = tokens / n_items
    bound = rate["flops_per_s"] / (2 * params * tokens_per_item)
    return {
        "encode": {"items": n_items, "items_per_s": round(encode_per_s, 1), "tokens_per_s": round(tokens / encode_s)},
        "top_k": {"k": TOP_K, "catalog": len(table), "queries_per_s": round(topk_per_s, 1)},
        "stage_items_per_s": round(stage_per_s, 1),
        "matmul": {**rate, "tflops": round(rate["flops_per_s"] / 1e12, 2)},
        "flop_bound": {
            "non_embedding_parameters": params,
            "tokens_per_item": round(tokens_per_item, 1),
            "items_per_s": round(bound, 1),
            "encode_fraction_of_bound": round(encode_per_s / bound, 4),
        },
        "config": {
            "model": encoder.model_id,
            "device": encoder.device,
            "dtype": "bfloat16 autocast" if encoder.device.startswith("cuda") else "float32",
            "gpu": torch.cuda.get_device_name() if encoder.device.startswith("cuda") else None,
            "threads": torch.get_num_threads(),
            "repeats": repeats,
            "torch": torch.__version__,
        },
    }


def format_stage_table(result: dict[str, Any]) -> str:
    config, bound, mm = result["config"], result["flop_bound"], result["matmul"]
    return "\n".join(
        [
            f"{config['model']} on {config['device']} ({config['dtype']}) {config['gpu'] or ''}".rstrip(),
            f"encode:       {result['encode']['items_per_s']:>10} items/s "
            f"({result['encode']['tokens_per_s']} tokens/s)",
            f"top-{result['top_k']['k']} exact:  {result['top_k']['queries_per_s']:>10} queries/s over "
            f"{result['top_k']['catalog']} vectors",
            f"stage:        {result['stage_items_per_s']:>10} items/s (encode then top-K)",
            f"matmul {mm['n']}^2 {mm['dtype']}: {mm['tflops']} TFLOP/s",
            f"FLOP bound:   {bound['items_per_s']:>10} items/s (2 x {bound['non_embedding_parameters']} params x "
            f"{bound['tokens_per_item']} tokens); encode reaches {bound['encode_fraction_of_bound']:.1%}",
        ]
    )
