"""The one exception root of simstream and its subclasses.

Code that talks to the outside (files, Kafka, Redis, model loading) wraps the library's own errors in one
of these with ``raise ... from exc``, so callers catch one root and still see the cause.
"""

from __future__ import annotations


class SimstreamError(Exception):
    """Root of every error simstream raises on purpose."""


class ModelLoadError(SimstreamError):
    """The encoder model cannot be found or loaded (fatal: the worker fails fast)."""


class StoreUnavailableError(SimstreamError):
    """Redis cannot be reached right now (connection, timeout, still loading): retryable with backoff."""


class StoreError(SimstreamError):
    """Redis answered with an error that retrying will not fix (bad command, wrong type, script error)."""


class StoreAuthError(StoreError):
    """Redis refused the credentials (or the ACL user lacks a permission): fatal, retrying cannot help."""


class IndexMismatchError(StoreError):
    """The existing vector index was built for another embedding dimension or another model."""


class EmbeddingRequiredError(SimstreamError):
    """A metadata-only write found no stored embedding of the same content and model: re-embed and retry."""

    def __init__(self, product_ids: list[str], applied: list[bool]) -> None:
        self.product_ids = product_ids
        # Applied flags of the whole batch: the batch's other writes went through and must be honoured.
        self.applied = applied
        super().__init__(
            f"metadata-only write needs an embedding for {len(product_ids)} product(s) "
            f"(stored content hash or model changed): {', '.join(product_ids[:10])}"
        )


class ConfigError(SimstreamError):
    """A setting is present but unusable (for example a text template naming an unknown field): fail fast."""


class InputFileError(SimstreamError):
    """A data file cannot be read (missing, unreadable)."""
