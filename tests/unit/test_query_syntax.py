"""The RediSearch query text: the one escaper of query values, and the KNN / range queries built with it.

That an escaped value really matches its TAG in a live index is covered by tests/integration
(test_vector_store.py's filtered KNN over punctuated and CJK categories, test_queries.py's CLI search).
"""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from simstream.core import vector_store
from simstream.core.query_syntax import escape_glob, escape_tag, knn_query, range_query
from simstream.core.vector_types import TAG_SEPARATOR, KnnFilter


def unescape(query_text: str) -> str:
    """Read escaped text as the query parser does, asserting that nothing in it is bare syntax: each
    ASCII character but a letter or digit must come right after a backslash."""
    value, chars = [], iter(query_text)
    for ch in chars:
        if ch == "\\":
            value.append(next(chars))  # a trailing lone backslash would raise StopIteration here
        else:
            assert not ch.isascii() or ch.isalnum(), f"bare {ch!r} in {query_text!r}"
            value.append(ch)
    return "".join(value)


def test_escape_tag_backslashes_everything_but_letters_and_digits() -> None:
    assert escape_tag("TV, Video & Home-Audio") == r"TV\,\ Video\ \&\ Home\-Audio"
    assert escape_tag("a.b/c(d)|e{f}") == r"a\.b\/c\(d\)\|e\{f\}"
    assert escape_tag("@brand:{x} -y ~z *") == r"\@brand\:\{x\}\ \-y\ \~z\ \*"
    assert escape_tag("$vec 'q' \"q\" %f% [1 2] <;>=!?^#`+") == (
        r"\$vec\ \'q\'\ \"q\"\ \%f\%\ \[1\ 2\]\ \<\;\>\=\!\?\^\#\`\+"
    )
    assert escape_tag("back\\slash") == "back\\\\slash"
    assert escape_tag("") == ""


def test_escape_tag_escapes_whitespace_and_control_characters() -> None:
    assert escape_tag("a b\tc\nd") == "a\\ b\\\tc\\\nd"
    # The TAG separator never reaches a query (the schemas reject control characters in brand and
    # category), but a value holding it must still come out as one escaped value, not syntax.
    assert escape_tag(f"Sony{TAG_SEPARATOR}Audio") == f"Sony\\{TAG_SEPARATOR}Audio"
    assert escape_tag("\x00\x7f") == "\\\x00\\\x7f"


def test_escape_tag_keeps_non_ascii_characters() -> None:
    assert escape_tag("数码相机2 Bose®") == "数码相机2\\ Bose®"
    assert escape_tag("Café・カメラ\u3000Ünïcode") == "Café・カメラ\u3000Ünïcode"


@given(st.text())
def test_escaped_values_hold_no_bare_syntax_and_read_back_unchanged(value: str) -> None:
    assert unescape(escape_tag(value)) == value


@given(st.text(alphabet=string.printable + "数码®"))
def test_escaped_printable_values_read_back_unchanged(value: str) -> None:
    assert unescape(escape_tag(value)) == value


def test_escape_glob_escapes_only_the_glob_syntax() -> None:
    assert escape_glob("shop[1]:*?\\product:") == "shop\\[1\\]:\\*\\?\\\\product:"
    assert escape_glob("a-b c.d") == "a-b c.d"


def test_filters_go_through_the_escaper_and_blank_tags_do_not_restrict() -> None:
    query = knn_query(5, KnnFilter(category="Cameras, Photo", brand="Sony", min_price=10, max_price=None))
    assert query == r"(@category:{Cameras\,\ Photo} @brand:{Sony} @price:[10.0 +inf])=>[KNN 5 @embedding $vec AS dist]"
    assert knn_query(5, KnnFilter(brand="  }) | @x:{y  ")).startswith(r"(@brand:{\}\)\ \|\ \@x\:\{y})")
    assert knn_query(11, None) == "*=>[KNN 11 @embedding $vec AS dist]"
    assert knn_query(3, KnnFilter(category="  ", brand="")) == "*=>[KNN 3 @embedding $vec AS dist]"
    assert "@price:[-inf 2.5]" in knn_query(5, KnnFilter(max_price=2.5))


def test_range_query_puts_the_filter_before_the_vector_range() -> None:
    assert range_query(None) == "@embedding:[VECTOR_RANGE $radius $vec]=>{$YIELD_DISTANCE_AS: dist}"
    assert range_query(KnnFilter(category="a b", min_kth=0.25)) == (
        r"@category:{a\ b} @kth:[0.25 +inf] @embedding:[VECTOR_RANGE $radius $vec]=>{$YIELD_DISTANCE_AS: dist}"
    )


def test_vector_store_re_exports_the_query_builders() -> None:
    assert vector_store.escape_tag is escape_tag
    assert vector_store.knn_query is knn_query
    assert vector_store.range_query is range_query
