"""Product fields -> the one text that is embedded (design.md §1: one place, one template).

Catalog text is messy: HTML in descriptions, entities escaped once or twice, Windows-1252 files,
UTF-8 read as Windows-1252 ("mojibake"), runs of whitespace. Everything is cleaned here, so the
encoder, the content hash and the benchmarks all see exactly the same string.
"""

from __future__ import annotations

import hashlib
import html
import re
import string
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

from simstream.core.errors import ConfigError, InputFileError
from simstream.schemas.events import AttributeValue, Product

# Unescaping repeats until stable, bounded: "&amp;amp;quot;" is still only three levels deep.
MAX_UNESCAPE_ROUNDS: Final = 4

_TEXT_FIELDS: Final[dict[str, Callable[[Product], str]]] = {
    "title": lambda product: clean_text(product.title),
    "description": lambda product: clean_text(product.description or ""),
    "brand": lambda product: clean_text(product.brand or ""),
    "category": lambda product: clean_text(product.category or ""),
    "attributes": lambda product: render_attributes(product.attributes),
    "tags": lambda product: ", ".join(filter(None, (clean_text(tag) for tag in product.tags))),
}
TEMPLATE_FIELDS: Final = frozenset(_TEXT_FIELDS)

_INVISIBLE_RE: Final = re.compile("[\u00ad\u200b-\u200d\u2060\ufeff]")  # soft hyphen, zero-width chars
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Whole elements whose content is not text for a reader.
_HIDDEN_ELEMENT_RE: Final = re.compile(r"<(script|style|head)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_COMMENT_RE: Final = re.compile(r"<!--.*?-->", re.DOTALL)
# Only tag-shaped text: "5 < 6 and 7 > 3" is prose and stays.
_TAG_RE: Final = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>")

# --- mojibake: UTF-8 bytes decoded as Windows-1252 ----------------------------------------------
# Each UTF-8 continuation byte 0x80-0xBF as Windows-1252 shows it (five bytes are unassigned in
# cp1252; latin-1 decoders leave them as C1 controls).
_CONTINUATION_CHARS: Final = "".join(
    bytes([byte]).decode("cp1252", errors="strict") if byte not in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else chr(byte)
    for byte in range(0x80, 0xC0)
)
_CONT: Final = f"[{re.escape(_CONTINUATION_CHARS)}]"
# A lead byte followed by exactly the continuation bytes its UTF-8 sequence needs.
_MOJIBAKE_RE: Final = re.compile(f"[\u00c2-\u00df]{_CONT}|[\u00e0-\u00ef]{_CONT}{{2}}|[\u00f0-\u00f4]{_CONT}{{3}}")
_CP1252_BYTE: Final[dict[str, int]] = {char: 0x80 + offset for offset, char in enumerate(_CONTINUATION_CHARS)}


def fix_encoding(raw: bytes | str) -> str:
    """Text from any encoding: bytes as UTF-8, else Windows-1252, else latin-1; then repair mojibake.

    The repair is conservative: only character runs that are exactly a UTF-8 sequence read as
    Windows-1252 (like "Ã©" for "é" or "â€œ" for a left double quote) are replaced, each one on
    its own, so genuine accented text around them is left alone.
    """
    text = _decode_bytes(raw) if isinstance(raw, bytes) else raw
    # Text encoded wrongly twice needs two rounds; stop as soon as nothing changes.
    for _ in range(3):
        repaired = _MOJIBAKE_RE.sub(_repair_sequence, text)
        if repaired == text:
            break
        text = repaired
    return text


def _decode_bytes(raw: bytes) -> str:
    for encoding in ("utf-8", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")  # maps every byte: never fails


def _repair_sequence(match: re.Match[str]) -> str:
    chars = match.group(0)
    try:
        encoded = bytes([ord(chars[0]), *(_CP1252_BYTE[char] for char in chars[1:])])
        return encoded.decode("utf-8")
    except UnicodeDecodeError:  # e.g. an overlong or surrogate sequence: not mojibake after all
        return chars


def clean_text(value: str) -> str:
    """One field as plain text: encoding repaired, HTML gone, entities resolved, whitespace single."""
    text = fix_encoding(value)
    text = _unescape_fully(text)
    text = _HIDDEN_ELEMENT_RE.sub(" ", text)
    text = _COMMENT_RE.sub(" ", text)
    text = _TAG_RE.sub(" ", text)
    text = _unescape_fully(text)  # entities that were inside the removed markup's text
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE_RE.sub("", text)
    text = _CONTROL_RE.sub(" ", text)
    return " ".join(text.split())


def _unescape_fully(text: str) -> str:
    for _ in range(MAX_UNESCAPE_ROUNDS):
        if "&" not in text:
            break
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    return text


def render_attributes(attributes: Mapping[str, AttributeValue]) -> str:
    """``"color: black, size: 42"``, sorted by key; attributes that clean to empty are left out."""
    parts: list[str] = []
    for key in sorted(attributes):
        name = clean_text(key)
        value = _render_attribute_value(attributes[key])
        if name and value:
            parts.append(f"{name}: {value}")
    return ", ".join(parts)


def _render_attribute_value(value: AttributeValue) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # "2", not "2.0": the same quantity reads the same whatever the producer sent
    if isinstance(value, int | float):
        return str(value)
    return clean_text(value)


@dataclass(frozen=True, slots=True)
class _TemplatePart:
    field: str
    separator: str  # the literal text between the previous field and this one


@dataclass(frozen=True, slots=True)
class _CompiledTemplate:
    prefix: str
    parts: tuple[_TemplatePart, ...]
    suffix: str


@lru_cache(maxsize=16)
def compile_template(template: str) -> _CompiledTemplate:
    """Parse and check a text template; raises ``ConfigError`` for fields that do not exist."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"text template {template!r} is malformed: {exc}") from exc
    prefix, suffix = "", ""
    parts: list[_TemplatePart] = []
    pending_literal = ""
    for literal, field, format_spec, conversion in parsed:
        pending_literal += literal
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS:
            known = ", ".join(sorted(TEMPLATE_FIELDS))
            raise ConfigError(f"text template {template!r} names unknown field {{{field}}}; known: {known}")
        if format_spec or conversion:
            raise ConfigError(f"text template {template!r}: {{{field}}} takes no format spec or conversion")
        if parts:
            parts.append(_TemplatePart(field, pending_literal))
        else:
            prefix = pending_literal
            parts.append(_TemplatePart(field, ""))
        pending_literal = ""
    suffix = pending_literal
    if not parts:
        raise ConfigError(f"text template {template!r} names no field; known: {', '.join(sorted(TEMPLATE_FIELDS))}")
    return _CompiledTemplate(prefix, tuple(parts), suffix)


def build_text(product: Product, template: str) -> str:
    """The text that is embedded for ``product``, from ``Settings.text_template``.

    Empty fields disappear together with the separator in front of them, so "{title}. {brand}.
    {description}" with no brand gives "Title. Description", never "Title. . Description". A field
    that already ends with the separator's punctuation does not get it twice ("Acme Inc." + ". ").
    """
    compiled = compile_template(template)
    pieces: list[str] = []
    for part in compiled.parts:
        value = _TEXT_FIELDS[part.field](product)
        if not value:
            continue
        if pieces:
            separator = part.separator
            pieces[-1] = _without_repeated_punctuation(pieces[-1], separator)
            pieces.append(separator)
        pieces.append(value)
    if pieces:
        pieces[-1] = _without_repeated_punctuation(pieces[-1], compiled.suffix)
    # Titles are required, so a product always yields text; the strip covers templates without {title}.
    return " ".join(f"{compiled.prefix}{''.join(pieces)}{compiled.suffix}".split()) if pieces else ""


def _without_repeated_punctuation(value: str, separator: str) -> str:
    mark = separator.lstrip()[:1]
    if mark and mark in ".,;:!?|/-" and value.endswith(mark):
        return value[: -len(mark)].rstrip()
    return value


def content_hash(text: str, model_id: str) -> str:
    """Identifies one embedding: the same text under the same model need not be embedded again."""
    return hashlib.sha256(f"{model_id}\x00{text}".encode()).hexdigest()


def read_text_file(path: Path) -> str:
    """A whole text file in whatever encoding it came in (see :func:`fix_encoding`)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc}") from exc
    return fix_encoding(raw)
