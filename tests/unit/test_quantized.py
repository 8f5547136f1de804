"""Dynamic int8 copies of a model, on a tiny random BERT built here (no download)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from support.tiny_bert import write_tiny_bert
from transformers import BertModel

from simstream.core.encoder import TransformerEncoder, model_device
from simstream.core.errors import ModelLoadError
from simstream.core.model_source import QUANTIZATION_MARKER, locate_model, weights_fingerprint
from simstream.core.quantized import quantize, read_quantization, require_cpu, write_quantized_copy

WORDS = ["sony", "bose", "lcd", "tv", "camera", "zoom", "lens", "hdmi", "cable", "usb", "memory", "card", "router"]
TEXTS = ["sony lcd tv", "bose card router", "hdmi cable", "camera zoom lens usb memory card", "router"]


@pytest.fixture(scope="module")
def float_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT, 64 wide, with mean pooling declared like a sentence-transformers folder."""
    folder = tmp_path_factory.mktemp("float-bert")
    return write_tiny_bert(folder, WORDS, hidden=64, seed=1, max_positions=32, mean_pooling=True)


@pytest.fixture(scope="module")
def int8_model(float_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_quantized_copy(float_model, tmp_path_factory.mktemp("copies") / "int8")


def test_the_copy_holds_every_model_file_and_a_marker_naming_its_base(float_model: Path, int8_model: Path) -> None:
    copied = {path.relative_to(int8_model) for path in int8_model.rglob("*")}
    assert copied == {path.relative_to(float_model) for path in float_model.rglob("*")} | {Path(QUANTIZATION_MARKER)}
    marker = json.loads((int8_model / QUANTIZATION_MARKER).read_text())
    assert marker == {
        "scheme": "dynamic-int8-per-channel",
        "layers": "Linear",
        "base": locate_model(str(float_model)).model_id,
    }
    assert not (float_model / QUANTIZATION_MARKER).exists()


def test_the_marker_changes_the_revision_and_plain_folders_keep_theirs(float_model: Path, int8_model: Path) -> None:
    weights = (float_model / "model.safetensors").read_bytes()
    assert weights_fingerprint(float_model) == hashlib.sha256(weights).hexdigest()[:12]
    assert weights_fingerprint(int8_model) != weights_fingerprint(float_model)
    assert locate_model(str(int8_model)).revision == weights_fingerprint(int8_model)


def test_quantize_replaces_every_linear_layer(float_model: Path) -> None:
    quantized = quantize(BertModel.from_pretrained(str(float_model)).eval())
    layer_types = {type(module) for module in quantized.modules()}
    assert torch.nn.Linear not in layer_types
    assert torch.ao.nn.quantized.dynamic.Linear in layer_types


def test_the_quantised_encoder_stays_close_to_the_float_one(float_model: Path, int8_model: Path) -> None:
    float_encoder = TransformerEncoder(str(float_model), device="cpu", threads=1)
    int8_encoder = TransformerEncoder(str(int8_model), device="cpu", threads=1)
    float_vectors, int8_vectors = float_encoder.encode(TEXTS), int8_encoder.encode(TEXTS)
    assert np.allclose(np.linalg.norm(int8_vectors, axis=1), 1.0, atol=1e-5)
    cosines = (float_vectors * int8_vectors).sum(axis=1)
    assert cosines.min() > 0.95
    assert not np.array_equal(float_vectors, int8_vectors)  # the quantised layers really ran
    assert int8_encoder.model_id != float_encoder.model_id


def test_dynamic_int8_is_refused_off_the_cpu(int8_model: Path) -> None:
    spec = read_quantization(int8_model)
    assert spec is not None
    require_cpu(spec, "cpu")
    with pytest.raises(ModelLoadError, match="CPU only"):
        require_cpu(spec, "cuda:0")


def test_an_unknown_scheme_is_refused_at_load(int8_model: Path, tmp_path: Path) -> None:
    (tmp_path / QUANTIZATION_MARKER).write_text(json.dumps({"scheme": "static-int4", "layers": "Linear", "base": "x"}))
    with pytest.raises(ModelLoadError, match=r"only 'dynamic-int8-per-channel'"):
        read_quantization(tmp_path)
    (tmp_path / QUANTIZATION_MARKER).write_text("{not json")
    with pytest.raises(ModelLoadError, match="unreadable"):
        read_quantization(tmp_path)


def test_a_copy_is_refused_over_an_existing_folder_or_from_a_copy(
    float_model: Path, int8_model: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelLoadError, match="already exists"):
        write_quantized_copy(float_model, int8_model)
    with pytest.raises(ModelLoadError, match="already a quantised copy"):
        write_quantized_copy(int8_model, tmp_path / "twice")
    with pytest.raises(ModelLoadError, match="no weights"):
        write_quantized_copy(tmp_path, tmp_path / "from-empty")
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # nothing half-written


def test_an_explicit_base_id_is_recorded(float_model: Path, tmp_path: Path) -> None:
    out = write_quantized_copy(float_model, tmp_path / "labelled", base_id="org/base@abc")
    assert json.loads((out / QUANTIZATION_MARKER).read_text())["base"] == "org/base@abc"


def test_auto_runs_a_quantised_copy_on_the_cpu_and_a_plain_model_where_torch_says(
    float_model: Path, int8_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU worker
    assert model_device(locate_model(str(int8_model)), "auto") == "cpu"
    assert model_device(locate_model(str(float_model)), "auto") == "cuda"
    assert model_device(locate_model(str(int8_model)), "cpu") == "cpu"
