"""The sha256 of a model file (weights, a model part), read in blocks."""

from __future__ import annotations

import hashlib
from pathlib import Path

from simstream.core.errors import ModelLoadError


def file_sha256(path: Path, what: str) -> str:
    """The sha256 of a file read in 1 MiB blocks; ModelLoadError naming ``what`` when unreadable."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {what} {path}: {exc}") from exc
    return digest.hexdigest()
