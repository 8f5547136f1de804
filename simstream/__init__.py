"""simstream: event-driven streaming embedder for fresh similar-item lists."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("simstream")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
