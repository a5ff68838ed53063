"""Text from a model made safe to store and to write into metadata: no control characters."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

_LINE_BREAKS = re.compile(r"\r\n?")
# C0 controls but tab and newline, DEL, C1 controls, lone surrogates and the noncharacters U+FFFE/U+FFFF:
# none is allowed in XML (so in XMP), and a model's babble is the only way they get into an answer.
_ILLEGAL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_WHITESPACE = re.compile(r"\s+")

def clean_text(text: str, *, multiline: bool = True) -> str:
    """``text`` without control characters.

    A multi-line text keeps its newlines and tabs (a CR or CRLF becomes a newline); a single-line text (a
    keyword, a title, alt text) has every run of whitespace, line breaks and tabs included, made one space.
    """
    text = _ILLEGAL.sub("", _LINE_BREAKS.sub("\n", text))
    if not multiline:
        text = _WHITESPACE.sub(" ", text).strip()
    return text


def clean_answer_data(data: dict[str, Any], single_line: Collection[str]) -> dict[str, Any]:
    """A structured answer with :func:`clean_text` applied to every string in it; the values of the keys in
    ``single_line`` (a title, alt text, keywords: see ``Task.single_line_keys``) as single lines, list items
    included."""
    return {key: _clean_value(value, key not in single_line) for key, value in data.items()}


def _clean_value(value: Any, multiline: bool) -> Any:
    if isinstance(value, str):
        return clean_text(value, multiline=multiline)
    if isinstance(value, list):
        return [_clean_value(item, multiline) for item in value]
    if isinstance(value, dict):
        return {key: _clean_value(item, multiline) for key, item in value.items()}
    return value
