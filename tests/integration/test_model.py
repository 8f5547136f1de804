"""The real default model (all-MiniLM-L6-v2 from its PyPI wheel): offline, 384-d unit vectors, the same
vectors as sentence-transformers, and product titles that mean the same score closer than those that don't."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simstream.core.encoder import TransformerEncoder

pytestmark = pytest.mark.integration

# Matched offers from Abt-Buy's ground truth (abt_buy_perfectMapping.csv): the same product, worded
# by two shops. Four different kinds of product, so every other pairing is an unrelated one.
ABT_BUY_MATCHES = [
    ("Linksys EtherFast 8-Port 10/100 Switch - EZXS88W", "Linksys EtherFast EZXS88W Ethernet Switch - EZXS88W"),
    (
        "Belkin F3H982-10 Pro Series High Integrity 10 Feet Monitor Cable - F3H98210",
        "Belkin Pro Series High Integrity VGA/SVGA Monitor Extension Cable - F3H982-10",
    ),
    ("LaCie USB 2.0 Floppy Disk Drive - 706018", "LaCie Pocket Floppy Disk Drive - 706018"),
    ("Canon KP-36IP Color Ink & Paper Set - 7737A001", "Canon KP 36IP Print Cartridge / Paper Kit - 7737A001"),
]

OFFLINE_LOAD = """
import os
from simstream.core.encoder import TransformerEncoder
encoder = TransformerEncoder("all-MiniLM-L6-v2", device="cpu", threads=1)
vector = encoder.encode(["Sony Turntable - PSLX350H"])
print(encoder.model_id, vector.shape, os.environ["HF_HUB_OFFLINE"], os.environ["TRANSFORMERS_OFFLINE"])
"""


def test_default_model_is_384_d_with_unit_rows(default_encoder: TransformerEncoder) -> None:
    titles = [title for pair in ABT_BUY_MATCHES for title in pair]
    vectors = default_encoder.encode(titles)
    assert default_encoder.dim == 384
    assert vectors.shape == (len(titles), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert re.fullmatch(r"sentence-transformers/all-MiniLM-L6-v2@[0-9a-f]{12}", default_encoder.model_id)


def test_matched_offers_score_above_every_unrelated_offer(default_encoder: TransformerEncoder) -> None:
    abt = default_encoder.encode([abt_title for abt_title, _ in ABT_BUY_MATCHES])
    buy = default_encoder.encode([buy_title for _, buy_title in ABT_BUY_MATCHES])
    scores = abt @ buy.T
    for row, abt_scores in enumerate(scores):
        unrelated = np.delete(abt_scores, row)
        assert abt_scores[row] > unrelated.max() + 0.1, (ABT_BUY_MATCHES[row], abt_scores)


def test_vectors_match_sentence_transformers(default_encoder: TransformerEncoder) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(
        str(default_encoder.model_path), device=default_encoder.device, local_files_only=True
    )
    # Short and long texts in one call: sorting, chunking and dynamic padding must not change a vector.
    texts = [title for pair in ABT_BUY_MATCHES for title in pair]
    texts += [" ".join([texts[0]] * 40), "", "é ü ß 中文 — ™"]
    ours = default_encoder.encode(texts)
    theirs = reference.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    cosines = np.sum(ours * theirs, axis=1)
    assert cosines.min() > 0.9999, cosines


def test_the_default_model_loads_with_no_hub_reachable(tmp_path: Path) -> None:
    # A fresh interpreter with an empty HF cache and a dead hub endpoint: loading must not need either,
    # and the encoder must switch the process to offline mode itself.
    env = {key: value for key, value in os.environ.items() if key not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}}
    env |= {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE_LOAD], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    model_id, *rest = done.stdout.split()
    assert model_id.startswith("sentence-transformers/all-MiniLM-L6-v2@")
    assert rest == ["(1,", "384)", "1", "1"]
