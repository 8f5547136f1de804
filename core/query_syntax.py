"""The text of RediSearch queries (DIALECT 2): KNN and vector-range queries with their TAG/NUMERIC filters.

``escape_tag`` is the one escaper of values put into query text; build every query value through it.
"""

from __future__ import annotations

from simstream.core.vector_types import KnnFilter

# Every document of the index.
ALL_QUERY = "*"
# The products whose pool is full: their admission threshold (``kth``, see core/refresh) is above -1.
FULL_POOLS_QUERY = "@kth:[(-1 +inf]"


def escape_tag(value: str) -> str:
    """Escape a TAG value for a query: every ASCII character that is not a letter or digit gets a
    backslash. The query parser escapes bytes, so non-ASCII characters (``®``, CJK) stay as they are."""
    return "".join("\\" + ch if ch.isascii() and not ch.isalnum() else ch for ch in value)


def escape_glob(value: str) -> str:
    """Escape a literal for a SCAN ``MATCH`` glob. A different syntax from the query language (only
    ``* ? [ ] \\`` are special), so it is deliberately not ``escape_tag``."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in value)


def knn_query(k: int, flt: KnnFilter | None) -> str:
    """The DIALECT 2 query: optional TAG/NUMERIC pre-filter, then KNN on ``$vec`` yielding ``dist``."""
    clauses = _filter_clauses(flt)
    prefilter = f"({' '.join(clauses)})" if clauses else "*"
    return f"{prefilter}=>[KNN {k} @embedding $vec AS dist]"


def range_query(flt: KnnFilter | None) -> str:
    """The DIALECT 2 query: the filter's clauses and a vector range of ``$radius`` around ``$vec``."""
    clauses = [*_filter_clauses(flt), "@embedding:[VECTOR_RANGE $radius $vec]=>{$YIELD_DISTANCE_AS: dist}"]
    return " ".join(clauses)


def _filter_clauses(flt: KnnFilter | None) -> list[str]:
    clauses: list[str] = []
    if flt is not None:
        # An empty TAG value cannot be queried (and means "unknown"): it does not restrict.
        if flt.category and flt.category.strip():
            clauses.append(f"@category:{{{escape_tag(flt.category.strip())}}}")
        if flt.brand and flt.brand.strip():
            clauses.append(f"@brand:{{{escape_tag(flt.brand.strip())}}}")
        if flt.min_price is not None or flt.max_price is not None:
            low, high = _number(flt.min_price, "-inf"), _number(flt.max_price, "+inf")
            clauses.append(f"@price:[{low} {high}]")
        if flt.min_kth is not None or flt.max_kth is not None:
            low, high = _number(flt.min_kth, "-inf"), _number(flt.max_kth, "+inf")
            clauses.append(f"@kth:[{low} {high}]")
    return clauses


def _number(value: float | None, unbounded: str) -> str:
    return unbounded if value is None else repr(float(value))
