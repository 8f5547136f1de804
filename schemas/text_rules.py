"""Character rules of the input contract, stated once for the decoder and the exported JSON Schema.

Each rule is a regular expression that the decoder applies with Python's ``re.search`` and the JSON
Schema states as ``pattern`` (must match somewhere) or ``not: {pattern}`` (must match nowhere), which
is what JSON Schema validators do, so a validator in another service and the worker give the same
verdict. The patterns use only syntax that Python and ECMA-262 read alike (escapes, classes, ``^``,
lookahead); ``$`` is avoided where Python would let a trailing newline through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

# Every C0 control and DEL.
CONTROL_CHARS: Final = r"[\x00-\x1f\x7f]"
# In running text tab and line breaks are fine; other C0 controls and DEL are producer bugs.
TEXT_CONTROL_CHARS: Final = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
# What Python's str.isspace() calls whitespace (Unicode 14).
_WHITESPACE: Final = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# A character a reader sees: not whitespace, not a control (C0, DEL, C1), not a zero-width or other
# invisible format mark. A title of only such characters embeds as an empty text.
VISIBLE_CHAR: Final = (
    r"[^\x00-\x20\x7f-\xa0\xad\u061c\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff\ufff9-\ufffb]"
)
# An id: no control anywhere, no whitespace at either end.
ID_FORBIDDEN: Final = rf"{CONTROL_CHARS}|^[{_WHITESPACE}]|[{_WHITESPACE}](?![\s\S])"

_YEAR: Final = r"(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_LEAP_YEAR: Final = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY: Final = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
# RFC 3339 date-time with a mandatory offset, only real calendar dates (JSON Schema's "format" is not
# asserted by default validators, so the rule is a pattern).
OCCURRED_AT_PATTERN: Final = (
    rf"^(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,9})?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])(?![\s\S])"
)

_END: Final = r"(?![\s\S])"  # the end of the string; Python's "$" would also match before a final newline
UUID_PATTERN: Final = rf"^[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}{_END}"
CURRENCY_PATTERN: Final = rf"^[A-Z]{{3}}{_END}"
LOCALE_PATTERN: Final = rf"^[A-Za-z]{{2,3}}(?:[-_][A-Za-z0-9]{{2,8}})*{_END}"


@dataclass(frozen=True, slots=True)
class _TextRule:
    pattern: str
    message: str
    must_match: bool

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        compiled = re.compile(self.pattern)

        def check(value: str) -> str:
            if bool(compiled.search(value)) != self.must_match:
                raise PydanticCustomError("text_rule", self.message)
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        rule = {"pattern": self.pattern}
        if self.must_match:
            json_schema.update(rule)
        else:
            json_schema["not"] = rule
        return json_schema


def Forbid(pattern: str, message: str) -> _TextRule:  # reads as a type annotation
    """The string must contain no match of ``pattern``."""
    return _TextRule(pattern, message, must_match=False)


def Require(pattern: str, message: str) -> _TextRule:
    """The string must contain a match of ``pattern``."""
    return _TextRule(pattern, message, must_match=True)
